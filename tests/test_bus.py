"""trackprint.bus against a real nats-server: topology, dedup, discard=new, dead-letter capture."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.waiting import wait_until_async
from trackprint import bus


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_topology_idempotent_and_consumer_config_applied(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        topo = bus.Topology(ack_wait_s=7, max_deliver=4, max_ack_pending=33, max_msgs=1000)
        await bus.ensure_topology(js, topo)
        await bus.ensure_topology(js, topo)  # twice: no error
        info = await js.consumer_info(bus.EVENTS_STREAM, bus.ANALYZER_CONSUMER)
        assert info.config.max_deliver == 4
        assert info.config.max_ack_pending == 33
        assert info.config.backoff == [7, 14, 28]
        assert str(getattr(info.config.ack_policy, "value", info.config.ack_policy)) == "explicit"
        # an update really applies (add_consumer is create-or-update)
        topo.max_ack_pending = 44
        await bus.ensure_topology(js, topo)
        info = await js.consumer_info(bus.RESULTS_STREAM, bus.PERSISTER_CONSUMER)
        assert info.config.max_ack_pending == 44
        sinfo = await js.stream_info(bus.EVENTS_STREAM)
        assert str(getattr(sinfo.config.discard, "value", sinfo.config.discard)) == "new"
        assert str(getattr(sinfo.config.retention, "value", sinfo.config.retention)) == "limits"
        assert sinfo.config.max_msgs == 1000
        assert await js.key_value(bus.FINGERPRINT_KV)
        await bus.close(nc)

    run(main())


def test_publish_dedup_by_msg_id(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js)
        a = await bus.publish(js, bus.event_subject("added"), b"{}", "id-1")
        b = await bus.publish(js, bus.event_subject("added"), b"{}", "id-1")
        c = await bus.publish(js, bus.event_subject("added"), b"{}", "id-2")
        assert not a.duplicate and b.duplicate and not c.duplicate
        assert (await js.stream_info(bus.EVENTS_STREAM)).state.messages == 2
        await bus.close(nc)

    run(main())


def test_stream_full_discard_new_raises_clear_error(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js, bus.Topology(max_msgs=3))
        for i in range(3):
            await bus.publish(js, bus.event_subject("added"), b"x", f"m{i}")
        with pytest.raises(bus.StreamFullError, match="full"):
            await bus.publish(js, bus.event_subject("added"), b"x", "m-overflow")
        # the old messages were not dropped
        info = await js.stream_info(bus.EVENTS_STREAM)
        assert info.state.messages == 3 and info.state.first_seq == 1
        await bus.close(nc)

    run(main())


def test_max_deliveries_and_term_advisories_are_captured(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js, bus.Topology(ack_wait_s=0.3, max_deliver=2))
        await bus.publish(js, bus.event_subject("added"), b"poison", "p1")
        await bus.publish(js, bus.event_subject("added"), b"terminate-me", "p2")
        sub = await bus.bind_analyzer(js)

        async def dead_letters() -> int:
            """One round of a consumer that never acks; the number of dead letters captured so far."""
            try:
                msgs = await sub.fetch(2, timeout=0.5)
            except asyncio.TimeoutError:
                msgs = []
            for m in msgs:
                if m.data == b"terminate-me":
                    await m.term()
                else:
                    await m.nak()  # never acked: exhausts max_deliver
            return (await js.stream_info(bus.DEADLETTER_STREAM)).state.messages

        await wait_until_async(dead_letters, 15, 0, "2 dead letters", until=lambda n: n >= 2)
        info = await js.stream_info(bus.DEADLETTER_STREAM)
        assert info.state.messages >= 2
        kinds = {}
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            m = await js.get_msg(bus.DEADLETTER_STREAM, seq)
            kinds[m.subject.split(".")[4]] = json.loads(m.data)
        assert set(kinds) == {"MAX_DELIVERIES", "MSG_TERMINATED"}
        seq = kinds["MAX_DELIVERIES"]["stream_seq"]
        original = await js.get_msg(bus.EVENTS_STREAM, seq)
        assert original.data == b"poison"
        await bus.close(nc, [sub])

    run(main())
