"""trackprint's own 25 numbers for every corpus track, from the project's engines, cached.

The features come from ``trackprint analyze --json --engine ENGINE`` (a subprocess: the same code path as
the product, the Rust server started by it, or the Python engine). Whatever the engines compute is what is
measured: the cache (``CORPUS/cache/trackprint-<engine>-v<FINGERPRINT_VERSION>-<hash>.json``) is keyed by
the fingerprint version and a hash of the engine itself (the Python engine's sources with
``trackprint/fingerprint.py``; the Rust server's binary, the one ``analyze`` would start), and each entry
by the file's size and modification time, so a changed engine or file is analysed again and an unchanged
one never.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from trackprint.benchmarks.evaluation import filecache
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION


def engine_hash(engine: str) -> str:
    """A short hash of what computes the numbers: the Python engine's sources, or the Rust server binary."""
    digest = hashlib.blake2b(digest_size=6)
    if engine == "python":
        import trackprint.fingerprint
        import trackprint.pyengine

        files = sorted(Path(trackprint.pyengine.__file__).parent.rglob("*.py"))
        files.append(Path(trackprint.fingerprint.__file__))
    else:
        from trackprint import binaries

        binary = binaries.rust_server_binary()
        if binary is None:
            raise RuntimeError(f"the {binaries.RUST_SERVER} binary was not found; {binaries.RUST_BUILD_HINT}")
        files = [Path(binary)]
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def default_engine() -> str:
    from trackprint import binaries

    return "rust" if binaries.rust_server_binary() is not None else "python"


def trackprint_vectors(paths: list[str], corpus_dir: Path, engine: str, *, jobs: int = 2,
                       log=print) -> tuple[dict[str, list[float]], dict[str, str], dict]:
    """({path: 25 values}, {path: error}, info) for ``paths``; analysed only when not cached."""
    key = engine_hash(engine)
    cache_file = Path(corpus_dir) / "cache" / f"trackprint-{engine}-v{FINGERPRINT_VERSION}-{key}.json"
    cache = filecache.load(cache_file)
    todo = filecache.stale(cache, paths)
    analysed_s = 0.0
    if todo:
        import time

        log(f"trackprint: analysing {len(todo)} of {len(paths)} files with the {engine} engine "
            f"(fingerprint version {FINGERPRINT_VERSION}, engine {key})")
        started = time.monotonic()
        command = [sys.executable, "-m", "trackprint.cli", "analyze", "--json", "--engine", engine,
                   "--jobs", str(jobs), *todo]
        done = subprocess.run(command, capture_output=True, text=True)
        analysed_s = time.monotonic() - started
        for line in done.stdout.splitlines():
            try:
                result = json.loads(line)
            except ValueError:
                continue
            path = result.get("path")
            if path not in todo:
                continue
            if result.get("ok"):
                fp = result["fingerprint"]
                cache[path] = {"stamp": filecache.stamp(path), "values": [float(fp[d]) for d in DIMENSIONS],
                               "engine": result.get("engine"), "version": result.get("fingerprint_version")}
            else:
                error = result.get("error") or {}
                cache[path] = {"stamp": filecache.stamp(path), "error": f"{error.get('code')}: {error.get('message')}"}
        missing = [p for p in todo if p not in cache]
        if missing:
            log(f"trackprint analyze gave no answer for {len(missing)} files (exit {done.returncode}): "
                f"{done.stderr.strip()[-400:]}")
        if engine_hash(engine) != key:  # the engine was rebuilt meanwhile: these numbers are of no one version
            raise RuntimeError(f"the {engine} engine changed while the corpus was being analysed; run again")
        filecache.save(cache_file, cache)
    values = {p: cache[p]["values"] for p in paths if "values" in cache.get(p, {})}
    errors = {p: cache.get(p, {}).get("error", "no result") for p in paths if p not in values}
    engines = sorted({cache[p].get("engine") or "?" for p in values})
    info = {"engine": engine, "engine_hash": key, "fingerprint_version": FINGERPRINT_VERSION,
            "engines_used": engines, "analysed_now": len(todo), "analysis_s": round(analysed_s, 2),
            "cache": str(cache_file)}
    return values, errors, info
