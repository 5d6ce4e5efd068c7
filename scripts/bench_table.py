#!/usr/bin/env python3
"""`make bench`: every benchmark of the project, then one table of their figures.

Runs, from the project root, each printing as it goes:
  1. cargo bench --bench write_path       the write path against plain SQLite
  2. cargo bench --bench sync             two processes, once per transport (http, local
                                          folders, ftp): initial sync, change flow,
                                          latency, a big file
  3. ../shared/bench/side_by_side.py      the same work beside PostgreSQL logical
                                          replication, as ratios (ROUNDS rounds, default 1)

Sizes: CRMSYNC_BENCH_RECORDS, CRMSYNC_BENCH_CHANGES, CRMSYNC_BENCH_SAMPLES and
CRMSYNC_BENCH_FILE_MB for the sync benchmark (BENCH_TRANSPORTS to choose transports);
ROWS, CHANGES, LAT_N and ROUNDS for the side-by-side run.
"""
import datetime
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE_BY_SIDE = os.path.join(ROOT, "..", "shared", "bench", "side_by_side.py")


def run(cmd, env=None):
    """Runs `cmd`, echoing its output; returns the output."""
    print("$ " + " ".join(cmd), flush=True)
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, **(env or {})})
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if process.wait() != 0:
        # The figures measured so far are still printed; the failure is said in the table.
        print(f"{' '.join(cmd)} failed ({process.returncode})", flush=True)
        return None
    return "".join(lines)


def find(pattern, text, default="—"):
    if text is None:
        return "failed (see above)"
    match = re.search(pattern, text)
    return match.group(1) if match else default


def main():
    rows = []  # (benchmark, figure, value)
    out = run(["cargo", "bench", "--bench", "write_path"])
    rows.append(("write path", "bulk insert, records/s (plain SQLite)",
                 find(r"plain SQLite : median +[\d.]+ s +(\d+) records/s", out)))
    rows.append(("write path", "bulk insert, records/s (crmsync write path)",
                 find(r"write path   : median +[\d.]+ s +(\d+) records/s", out)))
    rows.append(("write path", "write path / plain SQLite", find(r"ratio +: ([\d.]+)", out)))

    transports = os.environ.get("BENCH_TRANSPORTS", "http local ftp").split()
    for transport in transports:
        out = run(["cargo", "bench", "--bench", "sync"], {"CRMSYNC_BENCH_TRANSPORT": transport})
        name = f"sync, {transport}"
        records = find(r"initial sync : (\d+) records", out)
        rows.append((name, f"initial sync of {records} records, records/s",
                     find(r"initial sync : \d+ records in [\d.]+ s = (\d+) records/s", out)))
        rows.append((name, "changes/s", find(r"= (\d+) changes/s", out)))
        for direction in ("main → aux", "aux → main"):
            rows.append((name, f"latency {direction}, p50 / p99 ms",
                         find(rf"latency +: {direction}: (p50 \d+ ms, p99 \d+ ms)", out)))
        rows.append((name, "peak RSS main / aux, MiB",
                     find(r"peak RSS     : (main \d+ MiB, aux \d+ MiB)", out)))
        rows.append((name, "big file, MiB/s", find(r"file +: .* = (\d+) MiB/s", out)))
        rows.append((name, "big file, peak RSS main / aux",
                     find(r"file +: .* MiB/s; peak RSS (main \d+ MiB, aux \d+ MiB)", out)))

    run(["cargo", "build", "--release", "-p", "crmsync"])
    out = run([sys.executable, SIDE_BY_SIDE, os.path.join(ROOT, "target", "release", "crmsync")])
    if out is None:
        rows.append(("beside PostgreSQL", "side_by_side.py", "failed (see above)"))
    for line in (out or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] and not cells[0].startswith(("figure", "---")):
            rows.append(("beside PostgreSQL", cells[0],
                         f"{cells[2]} (PostgreSQL {cells[1]}; ratio {cells[3]})"))

    print()
    print(f"## crmsync benchmarks, {datetime.date.today()}")
    print()
    print("| benchmark | figure | value |")
    print("|---|---|---|")
    for bench, figure, value in rows:
        print(f"| {bench} | {figure} | {value} |")


if __name__ == "__main__":
    main()
