#!/usr/bin/env bash
# `make bench-postgres`: the side-by-side benchmark (../shared/bench/side_by_side.py: the
# same work by PostgreSQL logical replication and by two crmsync processes) with both
# crmsync instances on PostgreSQL instead of SQLite. side_by_side.py starts crmsync with
# `--data` only, so it runs scripts/crmsync_on_postgres.sh, which gives each instance a
# database of its own on a throw-away cluster made here (Debian's pg_createcluster, as
# pg_logical.sh makes its clusters, same settings; needs root and `postgresql`).
# Sizes as side_by_side.py takes them: ROWS, CHANGES, LAT_N, ROUNDS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CRMSYNC_BENCH_BINARY=$(realpath "${1:-$ROOT/target/release/crmsync}")
export CRMSYNC_BENCH_PG_PORT=${CRMSYNC_BENCH_PG_PORT:-5435}
PGVER=$(ls /usr/lib/postgresql | sort -n | tail -1)
NAME=crmsync_bench
conf=/etc/postgresql/$PGVER/$NAME
if pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$PGVER $NAME"; then
  pg_dropcluster --stop "$PGVER" "$NAME"
fi
pg_createcluster "$PGVER" "$NAME" -p "$CRMSYNC_BENCH_PG_PORT" --start-conf=manual >/dev/null
cat > "$conf/conf.d/zz-bench.conf" <<CONF
listen_addresses = '127.0.0.1'
max_wal_size = 4GB
${PG_EXTRA_CONF:-}
CONF
sed -i '1i host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"
pg_ctlcluster "$PGVER" "$NAME" start
trap 'pg_dropcluster --stop "$PGVER" "$NAME"' EXIT
echo "# crmsync on PostgreSQL $PGVER (127.0.0.1:$CRMSYNC_BENCH_PG_PORT), binary $CRMSYNC_BENCH_BINARY"
python3 "$ROOT/../shared/bench/side_by_side.py" "$ROOT/scripts/crmsync_on_postgres.sh"
