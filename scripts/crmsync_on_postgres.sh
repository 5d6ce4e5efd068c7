#!/usr/bin/env bash
# crmsync with its store on PostgreSQL, for benchmark drivers that start and inspect
# instances with `--data DIR` only (../shared/bench/side_by_side.py, crmsync_bench.py):
# each data folder gets a database of its own, named after the folder, on the server at
# 127.0.0.1:$CRMSYNC_BENCH_PG_PORT (user postgres, trusted), created on first use; the
# real binary is $CRMSYNC_BENCH_BINARY. Used by scripts/bench_postgres.sh.
set -euo pipefail
: "${CRMSYNC_BENCH_BINARY:?the crmsync binary to run}"
: "${CRMSYNC_BENCH_PG_PORT:?the bench PostgreSQL port}"
data=""
previous=""
for arg in "$@"; do
  if [ "$previous" = "--data" ]; then data=$arg; fi
  case $arg in --data=*) data=${arg#--data=} ;; esac
  previous=$arg
done
if [ -n "$data" ]; then
  # One database per folder: its path's hash keeps two runs' "main" apart.
  name="crm_$(basename "$data" | tr -c 'a-zA-Z0-9_\n' '_')_$(printf '%s' "$(realpath -m "$data")" | md5sum | cut -c1-8)"
  psql="psql -q -h 127.0.0.1 -p $CRMSYNC_BENCH_PG_PORT -U postgres -d postgres -tA"
  if [ "$($psql -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
    $psql -c "CREATE DATABASE $name" >/dev/null
  fi
  export CRMSYNC_DATABASE="postgres://postgres@127.0.0.1:$CRMSYNC_BENCH_PG_PORT/$name"
fi
exec "$CRMSYNC_BENCH_BINARY" "$@"
