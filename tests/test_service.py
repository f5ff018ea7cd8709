"""The service skeleton (trackprint/service.py) against a real nats-server.

A toy service that counts what the skeleton calls: it connects by itself or
borrows a connection, sets up the topology, loops ``step()``, logs progress at
its interval, lets the work in hand finish on the first stop signal, cuts it
short on the second, and always tears down and closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import httpx
import pytest

from tests.waiting import wait_until_async
from trackprint import bus
from trackprint.binaries import free_port
from trackprint.service import EXIT_ABORTED, Service


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Toy(Service):
    name = "toy"
    progress_every_s = 0.2

    def __init__(self, nats_url, js=None, step_s=0.05):
        super().__init__(nats_url, js=js)
        self.step_s = step_s
        self.calls: list[str] = []
        self.steps = 0
        self.finished_steps = 0
        self.sub = None

    async def prepare(self):
        self.calls.append("prepare")
        return True

    async def setup(self, js):
        self.calls.append("setup")
        self.sub = await bus.bind_persister(js)  # the topology exists: ensure_topology ran before setup

    async def step(self):
        self.steps += 1
        await asyncio.sleep(self.step_s)  # the work in hand
        self.finished_steps += 1

    def progress(self):
        return f"{self.steps} steps"

    async def refresh_metrics(self):
        self.calls.append("refresh_metrics")

    async def finish_work_in_hand(self):
        self.calls.append("finish_work_in_hand")

    async def teardown(self):
        self.calls.append("teardown")

    def subscriptions(self):
        return [self.sub]


def test_lifecycle_on_its_own_connection_with_progress_lines(nats_server, caplog):
    caplog.set_level(logging.INFO, logger="trackprint.toy")

    async def main():
        toy = Toy(nats_server.url)
        task = asyncio.create_task(toy.run())
        await asyncio.sleep(0.7)
        toy.stop()
        assert await asyncio.wait_for(task, 10) == 0
        return toy

    toy = run(main())
    assert toy.calls[:2] == ["prepare", "setup"] and toy.calls[-2:] == ["finish_work_in_hand", "teardown"]
    assert "refresh_metrics" in toy.calls
    assert toy.steps == toy.finished_steps > 3
    assert "toy progress: " in caplog.text and "toy stopped: " in caplog.text
    assert toy.js is not None


def test_borrowed_connection_stays_open(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        try:
            toy = Toy(nats_server.url, js=nc.jetstream())
            task = asyncio.create_task(toy.run())
            await asyncio.sleep(0.3)
            toy.stop()
            assert await asyncio.wait_for(task, 10) == 0
            assert nc.is_connected  # the caller's connection: only the toy's subscription went
            assert await nc.jetstream().stream_info(bus.RESULTS_STREAM)
        finally:
            await bus.close(nc)

    run(main())


def test_first_signal_finishes_the_work_in_hand_second_cuts_it_short(nats_server):
    async def main():
        patient = Toy(nats_server.url, step_s=1.0)
        task = asyncio.create_task(patient.run(install_signal_handlers=True))
        await wait_until_async(lambda: patient.steps, 30, 0.05, "the patient toy's first step")
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 10) == 0
        assert patient.finished_steps == patient.steps  # the step in hand was finished
        assert "teardown" in patient.calls

        hasty = Toy(nats_server.url, step_s=30.0)
        task = asyncio.create_task(hasty.run(install_signal_handlers=True))
        await wait_until_async(lambda: hasty.steps, 30, 0.05, "the hasty toy's first step")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)
        assert await asyncio.wait_for(task, 10) == EXIT_ABORTED
        assert hasty.finished_steps == 0 and "teardown" in hasty.calls
        # the handlers are gone with the service: SIGTERM's default is back
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    run(main())


def test_metrics_port_serves_the_registry_while_running(nats_server):
    port = free_port()

    async def main():
        toy = Toy(nats_server.url)
        task = asyncio.create_task(toy.run(metrics_port=port))
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
        toy.stop()
        assert await asyncio.wait_for(task, 10) == 0
        async with httpx.AsyncClient() as client:  # closed with the service
            with pytest.raises(httpx.TransportError):
                await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        return text

    text = run(main())
    assert "python_info" in text  # prometheus_client's default registry


def test_fetch_is_empty_when_idle(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        try:
            js = nc.jetstream()
            await bus.ensure_topology(js)
            toy = Toy(nats_server.url, js=js)
            sub = await bus.bind_persister(js)
            assert await toy.fetch(sub, 10, timeout=0.2) == []
            await sub.unsubscribe()
        finally:
            await bus.close(nc)

    run(main())
