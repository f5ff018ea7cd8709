#!/usr/bin/env bash
# Runs every test: the Rust crate's own tests (when present), then pytest.
# Tests that need PostgreSQL install and start it themselves (tests/fixtures_pg.py);
# nats-server and trackprint-server are started by tests/fixtures_nats.py and tests/fixtures_rust.py.
#
# Arguments go to pytest. `make test` (no arguments) runs everything; for a quick loop
# while editing, leave out the multi-minute crash and backfill tests:
#     scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f rust-server/Cargo.toml ]; then
    (cd rust-server && cargo test --release --locked --quiet)
fi
# the slowest tests are listed at the end: `make test` must stay well under 30 minutes
exec .venv/bin/python -m pytest -q --durations=25 "$@"
