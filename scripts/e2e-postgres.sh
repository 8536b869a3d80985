#!/usr/bin/env bash
# The end-to-end suites that do not look inside the data directory, run again with every
# control plane on PostgreSQL (a fresh database each, on one throwaway server): the store is
# switched and nothing else. Usage: scripts/e2e-postgres.sh [cargo test args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install -y postgresql-15)" >&2; exit 1; }
dir=$(mktemp -d /tmp/bosun-e2e-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then chmod 755 "$dir"; chown postgres:postgres "$dir"; fi
as_pg "$bin/initdb" -D "$dir/data" -U bosun --auth=trust -E UTF8 --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

export BOSUN_E2E_DATABASE_URL="postgres://bosun@127.0.0.1:$port/postgres"
# --workspace (not -p bosun-e2e): the same feature selection as `cargo test --workspace`, so
# nothing is compiled again.
cargo test --workspace --test spine --test fleet --test hooks "$@"
