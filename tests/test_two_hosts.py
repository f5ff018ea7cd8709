"""Two analyzer hosts, simulated by separate processes with their own Rust servers (TRACKPRINT_HOST sets
them apart), against one 3-node NATS cluster and PostgreSQL: every file is persisted exactly once and
both hosts did part of the work (each host's Rust server counts what it analysed). The same harness,
``trackprint bench-hosts``, measures how throughput adds up."""

import pytest

from trackprint.benchmarks.hosts import generate_library, run_hosts

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

FILES = 80


def test_two_analyzer_hosts_share_the_work_and_every_file_is_persisted_once(tmp_path, pg_url):
    library = tmp_path / "library"
    generate_library(library, FILES, seconds=3.0)
    result = run_hosts(library, FILES, hosts=2, analyzers_per_host=1, db_url=pg_url, work=tmp_path / "work",
                       timeout_s=600)
    assert result["exactly_once"], result["rows"]
    shares = result["analysed_by_host"]
    assert set(shares) == {"host-a", "host-b"}
    assert all(n > 0 for n in shares.values()), shares  # both hosts analysed files
    assert sum(shares.values()) >= FILES, shares  # (a redelivery may analyse a file twice; it is stored once)
