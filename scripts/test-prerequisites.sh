#!/usr/bin/env bash
# Installs the system packages the test suite needs, so `make test` passes on a fresh
# machine: vsftpd, a Debian FTP server the FTP transport is tested against (the tests start
# their own instances of it on free loopback ports; python3 runs examples/).
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required: install Rust with rustup" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required (examples/ are run by the tests)" >&2; exit 1; }
if [ ! -x /usr/sbin/vsftpd ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing vsftpd for the FTP tests…"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq vsftpd >/dev/null
  # The package may start a system-wide server; the tests run their own.
  $sudo service vsftpd stop >/dev/null 2>&1 || true
fi
