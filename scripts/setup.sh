#!/usr/bin/env bash
# Creates the virtual environment and installs trackprint with everything it needs.
# Idempotent: run it again after pulling changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[test,export]"

# The Rust analysis server (when the crate is present): built in release mode
# and installed next to the Python entry points, so it is on the venv's PATH.
if [ -f rust-server/Cargo.toml ]; then
    if ! command -v cargo >/dev/null 2>&1; then
        echo "setup: cargo not found; the Rust server will not be built (trackprint falls back to Python, loudly)" >&2
    else
        (cd rust-server && cargo build --release --locked --quiet)
        install -m 0755 rust-server/target/release/trackprint-server "$VENV/bin/trackprint-server"
    fi
fi
echo "setup: done ($("$VENV/bin/trackprint" --version))"
