"""A 3-node NATS cluster on loopback, from the nats-server wheel: the several-hosts topology on one
machine, for ``bench-hosts`` and the cluster tests. Each node has its own JetStream store and port; the
routes join them into one cluster (``deploy/nats/node.conf.template`` is the real-hosts version)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

from trackprint.binaries import free_port, nats_server_binary


class ClusterNode:
    """One nats-server of the cluster: ``start()``, ``kill()`` (SIGKILL), ``url``."""

    def __init__(self, name: str, base: Path, port: int, cluster_port: int, routes: list[int]):
        self.name, self.port = name, port
        self.store = base / name
        self.store.mkdir(parents=True)
        self.config = base / f"{name}.conf"
        self.log = base / f"{name}.log"
        self.config.write_text(
            f"server_name: {name}\nlisten: 127.0.0.1:{port}\n"
            f"jetstream {{ store_dir: \"{self.store}\", sync_interval: always }}\n"
            f"cluster {{ name: trackprint-local, listen: 127.0.0.1:{cluster_port}, "
            f"routes: [{', '.join(f'nats-route://127.0.0.1:{p}' for p in routes)}] }}\n"
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.config)],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def start_cluster(base: Path, nodes: int = 3) -> list[ClusterNode]:
    """``nodes`` nats-servers under ``base`` (created), started; see :func:`wait_for_jetstream`."""
    base.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(nodes)]
    cluster_ports = [free_port() for _ in range(nodes)]
    cluster = [ClusterNode(f"n{i + 1}", base, ports[i], cluster_ports[i],
                           [p for j, p in enumerate(cluster_ports) if j != i]) for i in range(nodes)]
    for node in cluster:
        node.start()
    return cluster


def urls(cluster: list[ClusterNode]) -> str:
    """The comma-separated URL list every service takes as ``--nats``."""
    return ",".join(node.url for node in cluster)


async def _jetstream_answers(url: str):
    import nats

    async def quiet(exc):  # refused connections while the nodes start are expected: no traceback
        pass

    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0, error_cb=quiet)
    try:
        return await nc.jetstream().account_info()
    finally:
        await nc.close()


def wait_for_jetstream(url: str, timeout: float = 60.0) -> None:
    """Block until the cluster has elected a JetStream meta leader (account info answers), or raise."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            asyncio.run(_jetstream_answers(url))
            return
        except Exception as exc:  # not yet: no meta leader, node still starting
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"the NATS cluster did not elect a JetStream meta leader in {timeout:.0f} s: {last}")
