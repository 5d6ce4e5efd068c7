#!/usr/bin/env bash
# Installs the system packages the test suite needs, so `make test` passes on a fresh
# machine: vsftpd, a Debian FTP server the FTP transport is tested against (the tests start
# their own instances of it on free loopback ports), openssl, which makes the self-signed
# certificates of the HTTPS and FTPS tests, chromium with chromium-driver for the
# browser tests of the web UI, and postgresql, whose programs the PostgreSQL store's tests
# run to start throw-away servers of their own (as the `postgres` user when run as root).
# python3 (with python3-cryptography) runs examples/.
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required: install Rust with rustup" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required (examples/ are run by the tests)" >&2; exit 1; }
missing=()
[ -x /usr/sbin/vsftpd ] || missing+=(vsftpd)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# examples/web_shop_order.py seals its packets with ChaCha20-Poly1305.
python3 -c 'import cryptography' 2>/dev/null || missing+=(python3-cryptography)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} for the tests…"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # The packages may start system-wide servers; the tests run their own.
  $sudo service vsftpd stop >/dev/null 2>&1 || true
  $sudo service postgresql stop >/dev/null 2>&1 || true
fi
