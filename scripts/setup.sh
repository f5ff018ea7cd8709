#!/usr/bin/env bash
# Creates the virtual environment and installs trackprint (editable, from this tree),
# with the Rust analysis server in the venv's bin/.
#
#     scripts/setup.sh [run|test] [VENV]
#
# run:  what running needs (`make up`): the package and its dependencies.
# test: that plus the test and export extras (pytest, librosa, pyarrow, ...) (`make test`).
# Idempotent: run it again after pulling changes.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=test
case "${1:-}" in
    run|test) MODE="$1"; shift ;;
esac
VENV="${1:-.venv}"
case "$MODE" in
    run) TARGET="." ;;
    test) TARGET=".[test,export]" ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip

# The Rust analysis server, built first and in the open: cargo prints a line per
# crate (a first build takes minutes). `pip install` below builds it again through
# setuptools-rust (pyproject.toml), which finds everything fresh in rust-server/target
# and installs the binary into $VENV/bin. Without cargo the install still works and
# trackprint falls back to the Python engine, loudly.
if [ -f rust-server/Cargo.toml ]; then
    if ! command -v cargo >/dev/null 2>&1; then
        echo "setup: cargo not found; the Rust server will not be built (trackprint falls back to Python, loudly)" >&2
    else
        # What the server's decoders need to build: cmake and a C compiler (libopus, built
        # from the sources opusic-sys bundles), FFmpeg's development files (AAC, HE-AAC,
        # WavPack, APE, W64 through the system's libavcodec/libavformat), libmpg123's
        # (MP3, MP2: the decoder libsndfile, the Python engine's, uses too) and libclang
        # (bindgen reads FFmpeg's headers). Debian/Ubuntu package names; installed as root
        # (or with sudo) when missing, and said so.
        if ! pkg-config --exists libavcodec libavformat libmpg123 2>/dev/null || ! command -v cmake >/dev/null 2>&1 \
            || ! command -v cc >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
            BUILD_PKGS="cmake build-essential pkg-config libavcodec-dev libavformat-dev libavutil-dev libmpg123-dev libclang-dev"
            SUDO=""
            if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
            if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
                echo "setup: installing the Rust server's build dependencies: $SUDO apt-get install -y $BUILD_PKGS"
                $SUDO apt-get update -qq
                DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $BUILD_PKGS >/dev/null
            else
                echo "setup: the Rust server needs $BUILD_PKGS (Debian names) to build; install them" >&2
            fi
        fi
        echo "setup: building the Rust analysis server (first time: several minutes)"
        (cd rust-server && cargo build --release --locked)
    fi
fi

echo "setup: installing trackprint ($MODE: pip install -e \"$TARGET\")"
# setuptools announces every editable install of a package-dir layout like ours
# (watcher/ -> trackprint.watcher, ...) with an "Editable installation." notice, in
# each of its modes, and pip shows the backend's warnings even with --quiet; that one
# notice is information, not a fault, so it is filtered by its text (nothing else).
PYTHONWARNINGS="ignore:Editable installation" \
    "$VENV/bin/python" -m pip install --quiet -e "$TARGET"

if [ -f rust-server/Cargo.toml ] && command -v cargo >/dev/null 2>&1 && [ ! -x "$VENV/bin/trackprint-server" ]; then
    # setuptools-rust installs the binary for editable installs too; this is the fallback.
    install -m 0755 rust-server/target/release/trackprint-server "$VENV/bin/trackprint-server"
fi
# test: the test-only HE-AAC encoder (tests/tools/heaac-encode: FDK AAC, bundled sources built by cc),
# which makes the HE-AAC test files Debian's ffmpeg cannot. Never part of the product or the wheel.
if [ "$MODE" = test ] && [ -f tests/tools/heaac-encode/Cargo.toml ]; then
    if ! command -v cargo >/dev/null 2>&1; then
        echo "setup: cargo not found; the test HE-AAC encoder will not be built (the HE-AAC tests will fail)" >&2
    else
        echo "setup: building the test HE-AAC encoder (tests/tools/heaac-encode)"
        (cd tests/tools/heaac-encode && cargo build --release --locked)
        install -m 0755 tests/tools/heaac-encode/target/release/trackprint-test-heaac-encode "$VENV/bin/"
    fi
fi

if [ -x "$VENV/bin/trackprint-server" ]; then
    server="$("$VENV/bin/trackprint-server" --version) in $VENV/bin"
else
    server="not built: the Python engine will be used"
fi
echo "setup: done ($("$VENV/bin/trackprint" --version); $server)"
