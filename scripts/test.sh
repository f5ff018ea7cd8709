#!/usr/bin/env bash
# Runs every test: the Rust crate's own tests (when present), then pytest.
# Tests that need PostgreSQL install and start it themselves (tests/pg.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f rust-server/Cargo.toml ]; then
    (cd rust-server && cargo test --release --locked --quiet)
fi
exec .venv/bin/python -m pytest -q "$@"
