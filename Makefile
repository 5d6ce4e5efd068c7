# The commands the README names. `make test` is also what CI runs.
.PHONY: run serve test test-long bench bench-postgres lint

# Two instances on loopback with sample data and an HTTP sync between them (./demo-data).
run:
	cargo run --release -- demo

# One instance on the embedded SQLite database in ./data.
serve:
	cargo run --release -- serve --data ./data --listen 127.0.0.1:8080

# The whole test suite: unit tests and end-to-end tests that start real crmsync processes,
# then the sync suite again with some instances on PostgreSQL and some on SQLite.
# Installs the system packages the tests need first (scripts/test-prerequisites.sh).
test:
	bash scripts/test-prerequisites.sh
	cargo test --workspace
	CRMSYNC_TEST_STORE=mixed cargo test -p crmsync --test sync

# The long run: every property test at 10,000 cases, and the randomized four-instance
# test at 2,000 operations for each of five seeds (CI runs both at their default size).
test-long:
	bash scripts/test-prerequisites.sh
	PROPTEST_CASES=10000 cargo test -p crmsync-domain
	PROPTEST_CASES=10000 cargo test -p crmsync-store-sqlite
	PROPTEST_CASES=10000 cargo test -p crmsync-sync
	PROPTEST_CASES=10000 cargo test -p crmsync --lib
	for seed in 1 2 3 4 5; do \
		CRMSYNC_RANDOM_SEED=$$seed CRMSYNC_RANDOM_OPS=2000 \
			cargo test -p crmsync --test sync random -- --nocapture || exit 1; \
	done

# Benchmarks (release build): the write path vs plain SQLite; sync between two processes
# over each transport; then the same work side by side with PostgreSQL logical
# replication, as ratios; and one table of every figure (scripts/bench_table.py).
bench:
	python3 scripts/bench_table.py

# The side-by-side benchmark with both crmsync instances on PostgreSQL (a throw-away
# cluster; each instance a database of its own): scripts/bench_postgres.sh.
bench-postgres:
	cargo build --release -p crmsync
	scripts/bench_postgres.sh target/release/crmsync

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
