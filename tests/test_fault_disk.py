"""Small and full disks under the data directory: a real tmpfs, the real `up` (nats-server, services, SQLite)."""

from __future__ import annotations

import json

from tests.audio import write_tones
from tests.procs import run_cli
from tests.tmpfs import tmpfs

SR = 22050


def test_up_starts_on_a_2_gib_data_disk_and_says_the_streams_are_small(tmp_path):
    library = tmp_path / "music"
    write_tones(library, [f"t{i}.flac" for i in range(6)], SR, base_hz=250, step_hz=53, seed=5, duration_s=1.0)
    with tmpfs(tmp_path / "data", "2g") as data:
        out = run_cli("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--exit-when-idle",
                      timeout=240)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "streams are limited to" in out.stderr
        report = json.loads(run_cli("status", "--json", "--data-dir", str(data), timeout=60).stdout)
        assert report["database"]["active"] == 6 and report["database"]["pending"] == 0
        assert any("streams limited to" in w for w in report["warnings"])
        conf = (data / "nats.conf").read_text()
        assert "max_file_store" in conf


def test_streams_are_created_smaller_when_jetstream_cannot_reserve_the_default(tmp_path, caplog):
    """A nats-server on a 300 MiB disk (not started by `up`): the 8 GiB default cannot be reserved (10047);
    the topology is still created, smaller, with a warning, and publishing works."""
    import asyncio
    import logging

    from tests.fixtures_nats import NatsServer
    from trackprint import bus

    async def topology(url: str) -> dict[str, int]:
        nc = await bus.connect(url, "test-small-disk")
        try:
            js = nc.jetstream()
            await bus.ensure_topology(js, bus.Topology(max_bytes=8 << 30))
            await bus.publish(js, bus.event_subject("added"), b"{}", "probe-1")
            return {name: (await js.stream_info(name)).config.max_bytes
                    for name in (bus.EVENTS_STREAM, bus.RESULTS_STREAM, bus.DEADLETTER_STREAM)}
        finally:
            await bus.close(nc)

    with tmpfs(tmp_path / "js", "300m") as base:
        server = NatsServer(str(base)).start()
        try:
            with caplog.at_level(logging.WARNING, logger="trackprint.bus"):
                sizes = asyncio.run(topology(server.url))
        finally:
            server.stop(kill=True)
    assert all(0 < size < 300 << 20 for size in sizes.values()), sizes
    assert "insufficient storage" in caplog.text
