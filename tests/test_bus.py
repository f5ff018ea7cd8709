"""trackprint.bus against a real nats-server: topology, dedup, discard=new, dead-letter capture."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.waiting import wait_until_async
from nats.js import api
from nats.js.errors import KeyNotFoundError

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


def test_the_fingerprint_cache_takes_unacknowledged_puts_and_answers_direct_gets_even_in_an_old_bucket(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        # a bucket as an earlier release made it: no direct gets
        await js.create_key_value(api.KeyValueConfig(bucket=bus.FINGERPRINT_KV, history=1))
        assert not (await js.stream_info(f"KV_{bus.FINGERPRINT_KV}")).config.allow_direct
        await bus.ensure_topology(js)
        for bucket in (bus.FINGERPRINT_KV, bus.STATUS_KV):
            assert (await js.stream_info(f"KV_{bucket}")).config.allow_direct, bucket
        kv = await bus.fingerprint_kv(js)
        await bus.cache_fingerprint(js, bus.fingerprint_kv_key(1, "flac-abc"), b"result")
        await nc.flush()
        # unacknowledged: the server has the put once flush returns, the stream stores it a moment later
        # (a direct get straight after flush read "not found" once in CI)
        entry = await wait_until_async(lambda: kv.get(bus.fingerprint_kv_key(1, "flac-abc")), 5, 0.05,
                                       "the unacknowledged put in the bucket", ignore=(KeyNotFoundError,))
        assert entry.value == b"result"
        await bus.close(nc)

    run(main())


def test_publish_dedup_by_msg_id(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js)
        a = await bus.publish(js, bus.event_subject("/lib/a.flac"), b"{}", "id-1")
        b = await bus.publish(js, bus.event_subject("/lib/a.flac"), b"{}", "id-1")
        c = await bus.publish(js, bus.event_subject("/lib/b.flac"), b"{}", "id-2")
        assert not a.duplicate and b.duplicate and not c.duplicate
        assert (await js.stream_info(bus.EVENTS_STREAM)).state.messages == 2
        await bus.close(nc)

    run(main())


def test_streams_keep_the_latest_message_of_each_file(nats_server):
    """A second pass over the same files replaces the first (discard=new does not refuse it: the
    per-subject limit drops the subject's oldest), so the store grows with the library, not with history."""
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js)
        for round_ in range(3):
            for i in range(20):
                await bus.publish(js, bus.event_subject(f"/lib/{i}.flac"), b"e%d" % round_, f"e{round_}-{i}")
                await bus.publish(js, bus.result_subject(f"/lib/{i}.flac"), b"r%d" % round_, f"r{round_}-{i}")
        for stream in (bus.EVENTS_STREAM, bus.RESULTS_STREAM):
            info = await js.stream_info(stream)
            assert info.config.max_msgs_per_subject == 1
            assert (info.state.messages, info.state.last_seq) == (20, 60)
        last = await js.get_msg(bus.EVENTS_STREAM, 60)
        assert last.data == b"e2"
        await bus.close(nc)

    run(main())


def test_a_stream_holding_messages_of_an_earlier_release_is_not_cut(nats_server, caplog):
    """Subjects of an earlier release were one per kind: limiting those to one message each would drop
    the history, so such a stream stays unlimited per subject, with a warning that says what to do."""
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js, bus.Topology(msgs_per_file=-1))
        for i in range(5):
            await js.publish("trackprint.events.added", b"old %d" % i)
        await bus.ensure_topology(js)
        info = await js.stream_info(bus.EVENTS_STREAM)
        assert info.state.messages == 5 and info.config.max_msgs_per_subject == -1
        assert (await js.stream_info(bus.RESULTS_STREAM)).config.max_msgs_per_subject == 1  # it held none
        await bus.close(nc)

    with caplog.at_level("WARNING", logger="trackprint.bus"):
        run(main())
    assert any("earlier release" in r.getMessage() and "5 messages" in r.getMessage() for r in caplog.records)


def test_the_fold_ends_when_the_last_events_are_gone(nats_server):
    """Re-analysis folds the events stream; a store that lost its last messages (a damaged store, a person's
    purge) must not leave it waiting for sequences that will never come."""
    from trackprint.bus.fold import latest_events
    from trackprint.contracts import FileEvent, encode

    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js)
        for name in ("a", "b", "c"):
            event = FileEvent(kind="added", path=f"/lib/{name}.flac", root="/lib")
            await bus.publish(js, bus.event_subject(event.path), encode(event), event.msg_id())
        await js.delete_msg(bus.EVENTS_STREAM, 3)
        latest = await asyncio.wait_for(latest_events(js), 20)
        assert sorted(latest) == ["/lib/a.flac", "/lib/b.flac"]
        await bus.close(nc)

    run(main())


def test_stream_full_discard_new_raises_clear_error(nats_server):
    async def main():
        nc = await bus.connect(nats_server.url, "test")
        js = nc.jetstream()
        await bus.ensure_topology(js, bus.Topology(max_msgs=3))
        for i in range(3):
            await bus.publish(js, bus.event_subject(f"/lib/{i}.flac"), b"x", f"m{i}")
        with pytest.raises(bus.StreamFullError, match="full"):
            await bus.publish(js, bus.event_subject("/lib/overflow.flac"), b"x", "m-overflow")
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
        await bus.publish(js, bus.event_subject("/lib/poison.flac"), b"poison", "p1")
        await bus.publish(js, bus.event_subject("/lib/term.flac"), b"terminate-me", "p2")
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
