# The commands the README names. `make test` is also what CI runs.
.PHONY: run serve test bench lint

# Two instances on loopback with sample data and an HTTP sync between them (./demo-data).
run:
	cargo run --release -- demo

# One instance on the embedded SQLite database in ./data.
serve:
	cargo run --release -- serve --data ./data --listen 127.0.0.1:8080

# The whole test suite: unit tests and end-to-end tests that start real crmsync processes.
# Installs whatever system packages the tests need first (none yet).
test:
	bash scripts/test-prerequisites.sh
	cargo test --workspace

# Benchmarks (release build): the write path vs plain SQLite; sync between two processes.
bench:
	cargo bench --bench write_path
	cargo bench --bench sync

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
