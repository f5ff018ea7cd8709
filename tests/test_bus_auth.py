"""A bus beyond loopback: TLS, one user per role, least privilege (deploy/nats/).

The secrets come from the shipped ``deploy/nats/make-secrets.py`` and the server
runs the shipped ``deploy/nats/node.conf.template`` (its cluster block left out:
one node cannot form the three-node cluster), with its paths pointed at the
test's files. Then: nobody gets in without TLS and a password; each role is
refused what it must never do; and the real watcher, analyzer and persister,
each logging in as its own role, fingerprint a library with no permission
violation anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from nats.js import api

from tests.audio import write_tones
from tests.procs import sqlite_fingerprint_count, run_cli, service, stop_all
from tests.waiting import wait_until
from trackprint import bus
from trackprint.binaries import free_port, nats_server_binary

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "nats" / "node.conf.template"
MAKE_SECRETS = ROOT / "deploy" / "nats" / "make-secrets.py"
ROLES = ("watcher", "analyzer", "persister", "admin")


def render(secrets: Path, port: int, store: Path, *, cluster: bool) -> str:
    """The shipped template with this test's paths, port and node name."""
    conf = TEMPLATE.read_text()
    conf = conf.replace("${NODE_NAME}", "n1").replace("0.0.0.0:4222", f"127.0.0.1:{port}")
    conf = conf.replace("127.0.0.1:8222", f"127.0.0.1:{free_port()}").replace("0.0.0.0:6222", f"127.0.0.1:{free_port()}")
    conf = conf.replace("/etc/trackprint/nats-server-cert.pem", str(secrets / "server-cert.pem"))
    conf = conf.replace("/run/credentials/nats.service/nats-server.key", str(secrets / "server-key.pem"))
    conf = conf.replace("/etc/trackprint/nats-ca.pem", str(secrets / "ca.pem"))
    conf = conf.replace("/var/lib/trackprint/nats", str(store))
    if not cluster:
        conf = conf[:conf.index("\ncluster {")] + "\n"
    return conf


@pytest.fixture(scope="module")
def secured_bus(tmp_path_factory):
    yield from _secured_bus(tmp_path_factory.mktemp("secure-bus"))


@pytest.fixture
def bare_secured_bus(tmp_path_factory):
    """A secured bus of its own, on which nobody has set up the topology yet."""
    yield from _secured_bus(tmp_path_factory.mktemp("bare-secure-bus"))


def _secured_bus(base: Path):
    secrets = base / "secrets"
    subprocess.run([sys.executable, str(MAKE_SECRETS), str(secrets), "--host", "127.0.0.1"], check=True,
                   capture_output=True)
    shutil.copy(secrets / "auth.conf", base / "auth.conf")  # `include ./auth.conf`: next to the config
    port = free_port()
    binary = nats_server_binary()
    assert binary, "nats-server not found"
    full = base / "full.conf"
    full.write_text(render(secrets, port, base / "store", cluster=True))
    checked = subprocess.run([binary, "-t", "-c", str(full)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + checked.stdout  # the whole shipped template parses
    conf = base / "nats.conf"
    conf.write_text(render(secrets, port, base / "store", cluster=False))
    log = open(base / "nats.log", "wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _port_open(port), 20, 0.1, "the secured nats-server to listen")
        yield {"url": f"tls://127.0.0.1:{port}", "plain": f"nats://127.0.0.1:{port}", "secrets": secrets,
               "log": base / "nats.log", "base": base}
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def role_env(bus_: dict, role: str) -> dict[str, str]:
    return {"TRACKPRINT_NATS_USER": role,
            "TRACKPRINT_NATS_PASSWORD_FILE": str(bus_["secrets"] / f"nats-{role}.password"),
            "TRACKPRINT_NATS_CA_FILE": str(bus_["secrets"] / "ca.pem")}


async def _connect(url: str, **kwargs):
    kwargs.setdefault("error_cb", _quiet)
    return await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3, **kwargs)


async def _quiet(exc):
    return None


def test_nobody_gets_in_without_tls_and_a_password(secured_bus):
    async def main():
        ca = bus.credentials(role_env(secured_bus, "admin"))["tls"]
        refusals = {}
        for what, url, kwargs in [
            ("no credentials", secured_bus["url"], {"tls": ca}),
            ("wrong password", secured_bus["url"], {"tls": ca, "user": "admin", "password": "guess"}),
            ("no TLS", secured_bus["plain"], {"user": "admin",
                                              "password": (secured_bus["secrets"] / "nats-admin.password")
                                              .read_text().strip()}),
        ]:
            try:
                nc = await _connect(url, **kwargs)
            except Exception as exc:
                refusals[what] = f"{type(exc).__name__}: {exc}"
            else:
                await nc.close()
        assert set(refusals) == {"no credentials", "wrong password", "no TLS"}, refusals
        admin = await _connect(secured_bus["url"], **bus.credentials(role_env(secured_bus, "admin")))
        await admin.close()

    asyncio.run(main())


def test_each_role_is_refused_what_it_must_never_do(secured_bus):
    async def as_role(role: str, **kwargs):
        return await _connect(secured_bus["url"], **bus.credentials(role_env(secured_bus, role)), **kwargs)

    async def refused(role: str, attempt) -> bool:
        """Refused by the server's permissions (not failed for some other reason).

        The server answers a forbidden publish with an asynchronous ``-ERR 'Permissions Violation ...'``
        while the client's request goes on waiting for a reply that will never come: that error (the
        connection's ``error_cb``, later its ``last_error``) is the refusal, so it ends the wait at once
        instead of sitting out the request's timeout."""
        violation = asyncio.Event()

        async def on_error(exc):
            if "permissions violation" in str(exc).lower():
                violation.set()

        nc = await as_role(role, error_cb=on_error)
        task = asyncio.ensure_future(asyncio.wait_for(attempt(nc.jetstream()), 3))
        waiter = asyncio.ensure_future(violation.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if violation.is_set():
                return True
            try:
                task.result()
            except Exception as exc:
                await asyncio.sleep(0.1)
                return "permissions violation" in f"{exc} {nc.last_error}".lower()
        finally:
            for t in (task, waiter):
                t.cancel()
            await asyncio.gather(task, waiter, return_exceptions=True)
            await nc.close()
        return False

    async def main():
        admin = await as_role("admin")
        js = admin.jetstream()
        await bus.ensure_topology(js)
        await js.add_stream(name="SCRATCH", subjects=["scratch.>"])
        await js.publish(bus.event_subject("added"), b"{}")  # a message a persister might try to delete
        results_before = (await js.stream_info(bus.RESULTS_STREAM)).state.messages
        events_before = (await js.stream_info(bus.EVENTS_STREAM)).state.messages
        forbidden = {
            ("watcher", "publish a result"): lambda j: j.publish(bus.result_subject("fingerprint"), b"{}"),
            ("watcher", "pull the analyzer consumer"): lambda j: _fetch(j, bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER),
            ("analyzer", "publish an event"): lambda j: j.publish(bus.event_subject("added"), b"{}"),
            ("analyzer", "purge the results"): lambda j: j.purge_stream(bus.RESULTS_STREAM),
            ("analyzer", "pull the persister consumer"): lambda j: _fetch(j, bus.RESULTS_STREAM,
                                                                          bus.PERSISTER_CONSUMER),
            ("persister", "publish a result"): lambda j: j.publish(bus.result_subject("fingerprint"), b"{}"),
            ("persister", "delete a stream"): lambda j: j.delete_stream("SCRATCH"),
            ("persister", "delete a message"): lambda j: j.delete_msg(bus.EVENTS_STREAM, 1),
            ("persister", "pull the analyzer consumer"): lambda j: _fetch(j, bus.EVENTS_STREAM,
                                                                          bus.ANALYZER_CONSUMER),
            # the topology is the admin's: no service may change a stream or another role's consumer
            ("analyzer", "update the events stream (max_age)"): lambda j: _shorten_events(j),
            ("analyzer", "create a stream"): lambda j: j.add_stream(name="ROGUE", subjects=["rogue.>"]),
            ("persister", "update the analyzer consumer"): lambda j: _rewrite_analyzer_consumer(j),
            ("persister", "create a consumer on the events"): lambda j: j.add_consumer(
                bus.EVENTS_STREAM, durable_name="rogue", ack_policy=api.AckPolicy.EXPLICIT),
            ("watcher", "delete a stream"): lambda j: j.delete_stream("SCRATCH"),
            ("watcher", "create a KV bucket"): lambda j: j.create_key_value(bucket="rogue"),
            ("analyzer", "delete the persister consumer"): lambda j: j.delete_consumer(bus.RESULTS_STREAM,
                                                                                      bus.PERSISTER_CONSUMER),
        }
        outcomes = {key: await refused(key[0], attempt) for key, attempt in forbidden.items()}
        assert all(outcomes.values()), {k: v for k, v in outcomes.items() if not v}
        assert (await js.stream_info(bus.RESULTS_STREAM)).state.messages == results_before
        assert (await js.stream_info(bus.EVENTS_STREAM)).state.messages == events_before
        assert "SCRATCH" in [s.config.name for s in await js.streams_info()]
        assert "ROGUE" not in [s.config.name for s in await js.streams_info()]
        assert not (await js.stream_info(bus.EVENTS_STREAM)).config.max_age  # still keeps events for ever
        analyzer = (await js.consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)).config
        assert analyzer.max_deliver == bus.Topology().max_deliver and analyzer.filter_subject == bus.EVENTS_SUBJECTS
        assert bus.PERSISTER_CONSUMER in [c.name for c in await js.consumers_info(bus.RESULTS_STREAM)]
        # what a role may do still works
        assert not await refused("watcher", lambda j: j.publish(bus.event_subject("added"), b"{}"))
        await js.delete_stream("SCRATCH")  # admin may
        await admin.close()

    asyncio.run(main())


async def _shorten_events(js):
    config = (await js.stream_info(bus.EVENTS_STREAM)).config
    config.max_age = 1.0  # would drop every event after a second
    await js.update_stream(config)


async def _rewrite_analyzer_consumer(js):
    config = (await js.consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)).config
    config.max_deliver = 1  # would dead-letter every event at its first failure
    await js.add_consumer(bus.EVENTS_STREAM, config)


async def _fetch(js, stream: str, consumer: str):
    sub = await js.pull_subscribe_bind(consumer, stream)
    await sub.fetch(1, timeout=2)


@pytest.mark.slow
def test_the_pipeline_runs_with_each_service_as_its_own_user(secured_bus, tmp_path):
    """The permissions are enough for real work: watcher, analyzer and persister, each as its role over
    TLS, fingerprint a library; no permission violation in any log; admin's status sees it all."""
    library = tmp_path / "music"
    names = [f"t{i}.flac" for i in range(3)]
    write_tones(library, names, 22050, base_hz=300, step_hz=50, seed=3, duration_s=2.0)
    db = tmp_path / "trackprint.db"
    url = secured_bus["url"]
    server_log_start = secured_bus["log"].stat().st_size  # the refusals of the other tests come before
    procs = []

    def start(role: str, *args: str):
        env = dict(os.environ, **role_env(secured_bus, role))
        procs.append(service(role, "--nats", url, *args, log=tmp_path / f"{role}.log", env=env))

    admin_env = dict(os.environ, **role_env(secured_bus, "admin"))
    setup = run_cli("topology", "--nats", url, env=admin_env, timeout=60)  # the admin's step (deploy/README.md)
    assert setup.returncode == 0, setup.stderr + setup.stdout
    try:
        start("persister", "--db", f"sqlite:///{db}", "--library", str(library))
        start("analyzer", "--library", str(library), "--no-rust")
        start("watcher", "--state", str(tmp_path / "watcher.sqlite"), str(library))

        def fingerprints():
            for p in procs:
                assert p.poll() is None, "a service exited: " + _logs(tmp_path)
                return sqlite_fingerprint_count(db)

        wait_until(fingerprints, 180, 1.0, lambda: "every file fingerprinted: " + _logs(tmp_path),
                   until=lambda n: n == len(names))
        status = run_cli("status", "--json", "--nats", url, "--db", f"sqlite:///{db}", env=admin_env, timeout=60)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["bus"]["reachable"], report["bus"]
    finally:
        stop_all(procs)
    logs = _logs(tmp_path) + secured_bus["log"].read_bytes()[server_log_start:].decode(errors="replace")
    assert not re.search(r"Permissions Violation|Publish Violation|Subscription Violation", logs), logs[-4000:]


def _logs(tmp_path: Path) -> str:
    return "".join(f"\n--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("*.log")))


def test_a_service_refuses_to_start_on_a_bus_without_topology_until_the_admin_sets_it_up(bare_secured_bus, tmp_path):
    """Only the admin may create streams: a service on a bare bus says, in one line, to run `trackprint
    topology` as admin, and exits (no retrying for ever); the command itself refuses a service user; run as
    admin it creates everything, after which the service starts and writes nothing to the topology."""
    url = bare_secured_bus["url"]
    library = tmp_path / "music"
    library.mkdir()
    env = dict(os.environ, **role_env(bare_secured_bus, "analyzer"))
    analyzer = service("analyzer", "--nats", url, "--library", str(library), "--no-rust",
                       log=tmp_path / "analyzer.log", env=env)
    try:
        assert analyzer.wait(90) == 2, _logs(tmp_path)
    finally:
        stop_all([analyzer])
    said = [line for line in (tmp_path / "analyzer.log").read_text().splitlines() if "trackprint topology" in line]
    assert len(said) == 1 and "does not exist" in said[0] and "admin" in said[0], _logs(tmp_path)

    as_watcher = run_cli("topology", "--nats", url, env=dict(os.environ, **role_env(bare_secured_bus, "watcher")),
                         timeout=120)
    assert as_watcher.returncode == 2 and "may not create" in as_watcher.stderr, as_watcher.stderr
    as_admin = run_cli("topology", "--nats", url, env=dict(os.environ, **role_env(bare_secured_bus, "admin")),
                       timeout=60)
    assert as_admin.returncode == 0, as_admin.stderr

    log_start = bare_secured_bus["log"].stat().st_size
    (tmp_path / "analyzer.log").unlink()
    analyzer = service("analyzer", "--nats", url, "--library", str(library), "--no-rust",
                       log=tmp_path / "analyzer.log", env=env)
    try:
        wait_until(lambda: "analyzer" in (tmp_path / "analyzer.log").read_text(errors="replace")
                   and _bound(bare_secured_bus), 60, 0.2, lambda: "the analyzer to bind: " + _logs(tmp_path))
        assert analyzer.poll() is None, _logs(tmp_path)
    finally:
        stop_all([analyzer])
    logs = _logs(tmp_path) + bare_secured_bus["log"].read_bytes()[log_start:].decode(errors="replace")
    assert not re.search(r"Permissions Violation|may not change", logs), logs[-4000:]


def _bound(bus_: dict) -> bool:
    """An analyzer is waiting on its consumer (a pull request is outstanding)."""
    async def main():
        nc = await _connect(bus_["url"], **bus.credentials(role_env(bus_, "admin")))
        try:
            return (await nc.jetstream().consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)).num_waiting > 0
        finally:
            await nc.close()

    return asyncio.run(main())
