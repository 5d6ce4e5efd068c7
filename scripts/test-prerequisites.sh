#!/usr/bin/env bash
# Installs the system packages the test suite needs, so `make test` passes on a fresh
# machine. Nothing beyond the Rust toolchain is needed yet; FTP servers and Chromium for
# the browser tests will be added here when those tests arrive.
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required: install Rust with rustup" >&2; exit 1; }
