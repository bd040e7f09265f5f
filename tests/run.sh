#!/usr/bin/env bash
# `make test` after lint: set up what the tests need on a fresh Debian 12 machine, run them all,
# then run the calendar-dependent ones again at another date and hour (tests/faketimes.py).
#
# - The real peers (SIPp, Kamailio with TLS, baresip, espeak-ng, sox, openssl, faketime): as
#   root, the missing Debian packages are installed (one apt-get update first); otherwise their
#   names and the command to install them are printed, and the run fails.
# - PostgreSQL: the server named by GATEWAY_TEST_PG (host:port or a postgresql:// URL; default
#   127.0.0.1:5432, database test, trust auth) when one answers there. Otherwise a throw-away
#   cluster of Debian's postgresql binaries (installed when missing, as root) in a temporary
#   folder, on a free loopback port, removed when the run ends.
#
# Usage: tests/run.sh PYTHON [PYTEST ARGS...]. GATEWAY_TEST_FAKETIME picks the second pass's
# instant (a name of tests/faketimes.py, "all", or "none"); by default the run picks one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:?usage: tests/run.sh PYTHON [PYTEST ARGS...]}
shift

say() { printf 'make test: %s\n' "$*" >&2; }

# --------------------------------------------------------------------------------- Debian peers
# package:what it provides (a binary on PATH, or a file)
PEERS=(
  "sip-tester:sipp"
  "kamailio:kamailio"
  "kamailio-tls-modules:/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so"
  "baresip-core:baresip"
  "espeak-ng:espeak-ng"
  "sox:sox"
  "openssl:openssl"
  "faketime:faketime"
)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

APT_UPDATED=
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  say "installing $*"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
for entry in "${PEERS[@]}"; do
  package=${entry%%:*}
  installed "$package" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt_install "${missing[@]}"
  else
    say "missing Debian packages: ${missing[*]}"
    say "install them as root: apt-get install --no-install-recommends ${missing[*]}"
    exit 1
  fi
fi
for entry in "${PEERS[@]}"; do
  package=${entry%%:*} provides=${entry#*:}
  if [[ $provides == /* ]]; then [ -e "$provides" ]; else command -v "$provides" >/dev/null; fi \
    || { say "package $package is installed but $provides is not there"; exit 1; }
done

# ----------------------------------------------------------------------------------- PostgreSQL
target=${GATEWAY_TEST_PG:-127.0.0.1:5432}
if [[ $target == *://* ]]; then
  url=$target
else
  url="postgresql://postgres@${target}/test"
fi

PG_DIR=
cleanup() {
  if [ -n "$PG_DIR" ]; then
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
      as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
  fi
}
trap cleanup EXIT

# initdb and postgres refuse to run as root: as root, they run as Debian's postgres user.
PG_USER=postgres
id -u postgres >/dev/null 2>&1 || PG_USER=nobody
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

if pg_isready -q -d "$url" -t 3 2>/dev/null; then
  say "PostgreSQL: $url"
else
  say "no PostgreSQL answers at $url: starting a throw-away cluster"
  pg_bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
  PG_BIN=$(pg_bin_dir)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    if [ "$(id -u)" = 0 ]; then
      apt_install postgresql
      PG_BIN=$(pg_bin_dir)
      id -u postgres >/dev/null 2>&1 && PG_USER=postgres
    else
      say "PostgreSQL's server binaries are missing: as root, apt-get install postgresql"
      exit 1
    fi
  fi
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gateway-test-pg.XXXXXX")
  chmod 755 "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then chown "$PG_USER" "$PG_DIR"; fi
  port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --no-instructions \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR" start >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; exit 1; }
  as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres test
  url="postgresql://postgres@127.0.0.1:${port}/test"
  say "PostgreSQL: throw-away cluster at $url ($PG_DIR)"
fi
export GATEWAY_TEST_PG=$url

# -------------------------------------------------------------------------------------- the runs
"$PYTHON" -m pytest -q "$@"

# The tests that handle calendars, again at another date and hour (monotonic time is not faked:
# timers and timeouts keep real time).
CALENDAR=(
  tests/store tests/consent tests/campaign tests/calls
  tests/interop/test_dialer.py tests/interop/test_outbound.py tests/interop/test_service.py
  tests/test_cli_store.py tests/test_cli_campaign.py tests/test_demo.py tests/test_simulator.py
)
which=${GATEWAY_TEST_FAKETIME:-random}
if [ "$which" != none ]; then
  "$PYTHON" tests/faketimes.py "$which" | while IFS=$'\t' read -r name instant; do
    say "calendar tests again at $name: $instant (libfaketime)"
    # tests/faketime/sitecustomize.py: a time.sleep that libfaketime 0.9.10 does not break.
    PYTHONPATH="$PWD/tests/faketime${PYTHONPATH:+:$PYTHONPATH}" FAKETIME_DONT_FAKE_MONOTONIC=1 \
      faketime -f "@$instant" "$PYTHON" -m pytest -q "${CALENDAR[@]}"
  done
fi
