"""The NATS JetStream topology shared by every service, and the few helpers that use it safely.

Streams (all ``limits`` retention, file storage, ``discard=new``):

- ``TRACKPRINT_EVENTS``  ``trackprint.events.<file key>``   FileEvent (watcher -> analyzers)
- ``TRACKPRINT_RESULTS`` ``trackprint.results.<file key>``  results (analyzers -> persister)
- ``TRACKPRINT_DEADLETTER``: the MAX_DELIVERIES and MSG_TERMINATED advisories of
  both consumers, plus ``trackprint.deadletter.<reason>`` records that services
  publish themselves (e.g. a malformed event). The original message of an
  advisory stays readable with ``js.get_msg(stream, seq)``.

Bounded by the library, not by history: every message is published on the
subject of its file (:func:`file_key`, a hash of the path; a result on the
subject of the event it answers), and both streams keep ``max_msgs_per_subject``
(default 1) messages per subject, the oldest replaced. So the events stream
holds the latest event of every path and the results stream the latest result
of every path, whatever the number of passes; a move is two events, the
source's tombstone and the destination's arrival (``watcher/publish.py``),
so each path's last word stays. What replay can rebuild from them is in
``persister/README.md`` ("Replay").

Consumers: durable pull consumers ``analyzer`` (events) and ``persister``
(results), created or updated with ``js.add_consumer`` (never via
``pull_subscribe(durable=, config=)``, which ignores the config of an existing
consumer); workers bind with ``js.pull_subscribe_bind``.

KV bucket ``fingerprints_by_content``: ``v<FINGERPRINT_VERSION>.<content_id>``
-> the last FingerprintResult for that audio content (a cache: moves and
retags reuse it instead of analysing again).

Limits are configurable through :class:`Topology` or environment variables
``TRACKPRINT_STREAM_MAX_BYTES``, ``TRACKPRINT_STREAM_MAX_MSGS``,
``TRACKPRINT_ACK_WAIT_S``, ``TRACKPRINT_MAX_DELIVER``,
``TRACKPRINT_MAX_ACK_PENDING``, ``TRACKPRINT_STREAM_REPLICAS`` (3 on a 3-node cluster),
``TRACKPRINT_STREAM_MSGS_PER_FILE`` (messages kept per file and stream, default 1; -1 keeps all).

Credentials (a bus that listens beyond loopback has users, permissions and TLS:
``deploy/nats/``): ``TRACKPRINT_NATS_USER`` with ``TRACKPRINT_NATS_PASSWORD_FILE``
(a file holding the password; ``TRACKPRINT_NATS_PASSWORD`` also works but shows in
the environment), and ``TRACKPRINT_NATS_CA_FILE``, the CA that signed the servers'
certificate (then connections use TLS and verify the server). See :func:`credentials`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import ssl
from typing import Any, Iterable

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import api

log = logging.getLogger("trackprint.bus")

EVENTS_STREAM = "TRACKPRINT_EVENTS"
RESULTS_STREAM = "TRACKPRINT_RESULTS"
DEADLETTER_STREAM = "TRACKPRINT_DEADLETTER"
ANALYZER_CONSUMER = "analyzer"
PERSISTER_CONSUMER = "persister"
REDRIVE_CONSUMER = "persister-redrive"  # on the dead-letter stream: results that exhausted their deliveries
FINGERPRINT_KV = "fingerprints_by_content"
STATUS_KV = "trackprint_status"  # services' health reports (watcher.<host>: offline roots, inotify)

EVENTS_PREFIX = "trackprint.events"
RESULTS_PREFIX = "trackprint.results"
DEADLETTER_PREFIX = "trackprint.deadletter"
EVENTS_SUBJECTS = f"{EVENTS_PREFIX}.>"
RESULTS_SUBJECTS = f"{RESULTS_PREFIX}.>"


def file_key(path: str) -> str:
    """The subject token of one file: 32 hex digits of BLAKE2b over the path's text form (a subject
    token cannot hold dots, spaces or arbitrary bytes; 128 bits make a collision practically impossible)."""
    import hashlib

    return hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


def event_subject(path: str) -> str:
    """``trackprint.events.<file key>``: the subject of every event about ``path``."""
    return f"{EVENTS_PREFIX}.{file_key(path)}"


def result_subject(event_path: str) -> str:
    """``trackprint.results.<file key>``: a result goes on the subject of the path of the event it answers."""
    return f"{RESULTS_PREFIX}.{file_key(event_path)}"


# Subjects of releases before per-file subjects: a stream still holding messages on them is not limited
# per subject (that would keep one message per kind and lose the history), see _ensure_stream.
LEGACY_SUBJECTS = {
    "TRACKPRINT_EVENTS": [f"{EVENTS_PREFIX}.{k}" for k in ("added", "changed", "moved", "removed")],
    "TRACKPRINT_RESULTS": [f"{RESULTS_PREFIX}.{k}" for k in ("fingerprint", "failure", "removed", "moved")],
}


def deadletter_subject(reason: str) -> str:
    """``trackprint.deadletter.<reason>`` (e.g. malformed)."""
    return f"{DEADLETTER_PREFIX}.{reason}"


def advisory_subject(kind: str, stream: str, consumer: str) -> str:
    """``$JS.EVENT.ADVISORY.CONSUMER.<kind>.<stream>.<consumer>``; kind MAX_DELIVERIES or MSG_TERMINATED."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.{kind}.{stream}.{consumer}"


def deletion_confirmation_key(root: str) -> str:
    """The status-KV key by which a person confirms a held mass deletion under ``root``."""
    import hashlib

    return "confirm-deletions." + hashlib.blake2b(root.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def fingerprint_kv_key(version: int, content_id: str) -> str:
    return f"v{version}.{content_id}"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclasses.dataclass
class Topology:
    """Stream and consumer limits. Defaults suit one large library (tens of thousands of tracks)."""

    max_bytes: int = dataclasses.field(default_factory=lambda: _env_int("TRACKPRINT_STREAM_MAX_BYTES", 8 << 30))
    max_msgs: int = dataclasses.field(default_factory=lambda: _env_int("TRACKPRINT_STREAM_MAX_MSGS", -1))
    duplicate_window_s: float = 120.0
    # Ack deadline of the first delivery; NATS replaces ack_wait with backoff[n] on delivery n+1.
    ack_wait_s: float = dataclasses.field(default_factory=lambda: _env_float("TRACKPRINT_ACK_WAIT_S", 60.0))
    max_deliver: int = dataclasses.field(default_factory=lambda: _env_int("TRACKPRINT_MAX_DELIVER", 5))
    max_ack_pending: int = dataclasses.field(default_factory=lambda: _env_int("TRACKPRINT_MAX_ACK_PENDING", 1000))
    storage: api.StorageType = api.StorageType.FILE
    # 3 on a 3-node cluster (deploy/): every stream and consumer survives the loss of one node
    num_replicas: int = dataclasses.field(default_factory=lambda: _env_int("TRACKPRINT_STREAM_REPLICAS", 1))
    # messages kept per file (subject) in the events and results streams: the latest only by default
    msgs_per_file: int = dataclasses.field(default_factory=lambda: _env_int("TRACKPRINT_STREAM_MSGS_PER_FILE", 1))

    def backoff(self) -> list[float]:
        """Ack-wait per delivery attempt: ack_wait, 2x, 4x... (max_deliver - 1 entries: NATS needs fewer than max_deliver)."""
        n = max(1, self.max_deliver - 1)
        return [self.ack_wait_s * (2 ** min(i, 4)) for i in range(n)]


class BusError(RuntimeError):
    """A bus operation failed in a way the caller must handle (never ack after this)."""


class StreamFullError(BusError):
    """The stream reached max_bytes/max_msgs and rejects new messages (discard=new)."""


async def _log_error(exc: Exception) -> None:
    log.error("NATS error: %s: %s", type(exc).__name__, exc)


def _callbacks(name: str, holder: dict[str, Client]) -> dict[str, Any]:
    def closing() -> bool:  # our own drain/close: not worth a warning
        nc = holder.get("nc")
        return nc is not None and (nc.is_draining or nc.is_closed)

    async def disconnected() -> None:
        if closing():
            log.info("NATS %s: disconnected (closing)", name)
        else:
            log.warning("NATS %s: DISCONNECTED from the server; publishing and acking stall until it is back", name)

    async def reconnected() -> None:
        log.warning("NATS %s: reconnected", name)

    async def closed() -> None:
        (log.info if closing() else log.warning)("NATS %s: connection closed", name)

    return {
        "error_cb": _log_error,
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
        "closed_cb": closed,
    }


class CredentialsError(RuntimeError):
    """The configured NATS credentials cannot be used (a file missing or unreadable)."""


def credentials(env: dict[str, str] | None = None) -> dict[str, Any]:
    """``nats.connect`` keyword arguments for the user, password and CA in the environment (module
    docstring); empty when none is set (the embedded, loopback-only bus)."""
    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    user = env.get("TRACKPRINT_NATS_USER", "")
    password_file = env.get("TRACKPRINT_NATS_PASSWORD_FILE", "")
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as fh:
                out["password"] = fh.read().strip()
        except OSError as exc:
            raise CredentialsError(f"TRACKPRINT_NATS_PASSWORD_FILE {password_file}: {exc.strerror or exc}") from None
    elif env.get("TRACKPRINT_NATS_PASSWORD"):
        out["password"] = env["TRACKPRINT_NATS_PASSWORD"]
    if user:
        out["user"] = user
    if "password" in out and not user:
        raise CredentialsError("a NATS password is set but no TRACKPRINT_NATS_USER")
    ca_file = env.get("TRACKPRINT_NATS_CA_FILE", "")
    if ca_file:
        try:
            out["tls"] = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CredentialsError(f"TRACKPRINT_NATS_CA_FILE {ca_file}: {exc}") from None
    return out


async def connect(servers: str | list[str], name: str, *, connect_timeout: float = 5.0) -> Client:
    """Connect with settings that never give up and notice a dead server within seconds.

    ``servers`` is a URL, a comma-separated list of URLs, or a list.
    """
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    holder: dict[str, Client] = {}
    nc = await nats.connect(
        servers=servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        ping_interval=5,
        max_outstanding_pings=3,
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        **_callbacks(name, holder),
        **credentials(),
    )
    holder["nc"] = nc
    return nc


MIN_STREAM_BYTES = 16 << 20
DEADLETTER_SHARE = 8  # the dead-letter stream gets an eighth of the others' size


def _stream_config(name: str, subjects: list[str], topo: Topology, max_bytes: int | None = None,
                   per_file: bool = False) -> api.StreamConfig:
    return api.StreamConfig(
        name=name,
        subjects=subjects,
        retention=api.RetentionPolicy.LIMITS,
        storage=topo.storage,
        discard=api.DiscardPolicy.NEW,
        max_bytes=max_bytes or topo.max_bytes,
        max_msgs=topo.max_msgs,
        duplicate_window=topo.duplicate_window_s,
        num_replicas=topo.num_replicas,
        # discard=new still replaces a subject's oldest message (discard_new_per_subject stays off)
        max_msgs_per_subject=topo.msgs_per_file if per_file else -1,
        # direct gets: the persister reads a batch's events in one request (persister/sources.py)
        allow_direct=per_file,
    )


_STREAM_FIELDS = ("subjects", "retention", "storage", "discard", "max_bytes", "max_msgs", "duplicate_window",
                  "num_replicas", "max_msgs_per_subject", "allow_direct")


def _differs(existing: api.StreamConfig, wanted: api.StreamConfig) -> bool:
    return any(getattr(existing, name) != getattr(wanted, name) for name in _STREAM_FIELDS)


def _stream_differences(existing: api.StreamConfig, wanted: api.StreamConfig) -> str:
    return ", ".join(f"{name} {getattr(existing, name)!r}, wanted {getattr(wanted, name)!r}"
                     for name in _STREAM_FIELDS if getattr(existing, name) != getattr(wanted, name))


def _stream_usable(existing: api.StreamConfig, wanted: api.StreamConfig) -> bool:
    """A stream that differs only in its limits (sizes, replicas, per-file bound) still carries the pipeline:
    it captures every subject wanted, with the same retention and storage."""
    return (set(wanted.subjects or ()) <= set(existing.subjects or ())
            and existing.retention == wanted.retention and existing.storage == wanted.storage)


# Why a write was refused: the server answers a request to a subject the user may not publish to with
# "-ERR 'Permissions Violation for Publish to ...'" (nats-py hands it to error_cb and keeps it as the
# connection's last_error) and no reply, so the request times out; JetStream itself may answer an
# API error naming the permission.
_DENIED_MARKERS = ("permissions violation", "permission denied", "not authorized", "authorization violation")


def _permission_denied(nc, before: BaseException | None, exc: BaseException) -> bool:
    if isinstance(exc, nats.js.errors.APIError):
        return any(m in f"{exc.description or ''} {exc}".lower() for m in _DENIED_MARKERS)
    if isinstance(exc, (nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.NoRespondersError)):
        return _refused_since(nc, before)
    return False


def _refused_since(nc, before: BaseException | None) -> bool:
    """The connection's last error is a permissions violation that arrived after ``before``."""
    after = getattr(nc, "last_error", None)
    return after is not None and after is not before and any(m in str(after).lower() for m in _DENIED_MARKERS)


class TopologyError(CredentialsError):
    """The bus lacks a stream, consumer or KV bucket this service needs (or has it set up so that the service
    cannot work with it), and this service's NATS user may not set it up: the admin does (``trackprint
    topology``). Raised once, never retried: a configuration mistake, like :class:`CredentialsError`."""


REFUSAL_POLL_S = 0.05  # how often a topology write in flight looks for the server's refusal

TOPOLOGY_HINT = ("set up the streams, consumers and KV buckets as the admin first: `trackprint topology --nats URL` "
                 "with TRACKPRINT_NATS_USER=admin and TRACKPRINT_NATS_PASSWORD_FILE=<nats-admin.password> "
                 "(deploy/README.md, NATS cluster)")


async def _refused_while_waiting(nc, before: BaseException | None, request) -> bool:
    """Await ``request``; True as soon as the server's permissions violation for it arrives. The server
    refuses a forbidden request with an asynchronous ``-ERR 'Permissions Violation ...'`` (the
    connection's ``last_error``) and never replies, so waiting for the reply would sit out its timeout."""
    task = asyncio.ensure_future(request)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=REFUSAL_POLL_S)
            if done:
                task.result()  # its exception, if any, is the caller's to judge
                return False
            if _refused_since(nc, before):
                return True
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _write(js, what: str, write, *, usable: bool) -> bool:
    """One topology write (True: done). Refused because this NATS user may not make it (deploy/nats: only
    the admin sets up the topology): False with a warning when the object as it exists is ``usable``,
    else :class:`TopologyError` with one line saying what is missing and who sets it up. Any other
    failure is raised as it is (the service retries timeouts, e.g. a cluster electing its leaders)."""
    nc = getattr(js, "_nc", None)
    before = getattr(nc, "last_error", None)
    try:
        if not await _refused_while_waiting(nc, before, write()):
            return True
    except Exception as exc:
        if not _permission_denied(nc, before, exc):
            raise
    user = (getattr(nc, "options", None) or {}).get("user") or os.environ.get("TRACKPRINT_NATS_USER") or "(none)"
    if usable:
        log.warning("%s, and NATS user %s may not change it: going on with it as it is (to apply these settings, %s)",
                    what, user, TOPOLOGY_HINT)
        return False
    raise TopologyError(f"{what}, and NATS user {user} may not create or change it: {TOPOLOGY_HINT}")


async def _legacy_messages(js, stream: str) -> int:
    """How many messages ``stream`` holds on :data:`LEGACY_SUBJECTS`."""
    count = 0
    for subject in LEGACY_SUBJECTS.get(stream, []):
        try:
            info = await js.stream_info(stream, subjects_filter=subject)
        except Exception:  # an old server without subject details: assume the worst
            return -1
        count += sum((info.state.subjects or {}).values())
    return count


def _insufficient_storage(exc: Exception) -> bool:
    return getattr(exc, "err_code", None) == 10047 or "insufficient storage" in str(exc).lower()


async def _ensure_stream(js, config: api.StreamConfig) -> None:
    """Create the stream, or update an existing one (never shrinking it: a smaller limit would make
    the server drop history). When JetStream cannot reserve ``max_bytes`` (a small or full disk, error
    10047) the stream is created smaller, halving down to 16 MiB, and a warning says so."""
    try:
        existing = await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        existing = None
    if existing is not None:
        config.max_bytes = max(config.max_bytes, existing.config.max_bytes or 0)
        if (config.max_msgs_per_subject or -1) > 0 and (existing.config.max_msgs_per_subject or -1) <= 0:
            legacy = await _legacy_messages(js, config.name)
            if legacy:
                config.max_msgs_per_subject = existing.config.max_msgs_per_subject
                log.warning("stream %s holds %d messages on the subjects of an earlier release (one subject per "
                            "kind); it stays unbounded per file, so that none of them is dropped. To bound it: let "
                            "the pipeline go idle, then rebuild it (docs: persister/README.md, Replay)",
                            config.name, legacy)
        if not _differs(existing.config, config):
            return  # nothing to write: a service restarting on a full disk must not need the disk
        await _write(js, f"stream {config.name} is set up otherwise ({_stream_differences(existing.config, config)})",
                     lambda: js.update_stream(config), usable=_stream_usable(existing.config, config))
        return
    wanted = config.max_bytes
    while True:
        try:
            await _write(js, f"stream {config.name} does not exist", lambda: js.add_stream(config), usable=False)
            if config.max_bytes < wanted:
                log.warning("JetStream could not reserve %d MiB for stream %s (insufficient storage: a small or "
                            "full disk); created it with %d MiB. Free disk space or set TRACKPRINT_STREAM_MAX_BYTES",
                            wanted >> 20, config.name, config.max_bytes >> 20)
            else:
                log.info("created stream %s (%d MiB)", config.name, config.max_bytes >> 20)
            return
        except nats.js.errors.BadRequestError as exc:
            if "already in use" in str(exc):  # created concurrently by another service
                return
            if not _insufficient_storage(exc) or config.max_bytes // 2 < MIN_STREAM_BYTES:
                raise
            config.max_bytes //= 2
        except nats.js.errors.APIError as exc:
            if not _insufficient_storage(exc) or config.max_bytes // 2 < MIN_STREAM_BYTES:
                raise
            config.max_bytes //= 2


def consumer_config(durable: str, filter_subject: str, topo: Topology) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=durable,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=topo.ack_wait_s,
        max_deliver=topo.max_deliver,
        backoff=topo.backoff(),
        max_ack_pending=topo.max_ack_pending,
        filter_subject=filter_subject,
        max_waiting=512,
    )


async def ensure_topology(js, topology: Topology | None = None) -> None:
    """Create or update streams, consumers and the KV buckets. Idempotent; every service calls it at start.

    It writes only what is missing or differs, so a service whose NATS user may not touch the topology
    (deploy/nats: only ``admin`` may; ``trackprint topology`` sets it up) starts on a bus the admin set up
    without a single refused request. Where such a user finds something missing, or set up so that it
    cannot work (another filter, subjects not captured), it raises :class:`TopologyError` saying to run
    the set-up as admin; where only limits differ (sizes, ack wait, deliveries) it warns and goes on.
    """
    topo = topology or Topology()
    await _ensure_stream(js, _stream_config(EVENTS_STREAM, [EVENTS_SUBJECTS], topo, per_file=True))
    await _ensure_stream(js, _stream_config(RESULTS_STREAM, [RESULTS_SUBJECTS], topo, per_file=True))
    dead_subjects = [f"{DEADLETTER_PREFIX}.>"]
    for stream, consumer in ((EVENTS_STREAM, ANALYZER_CONSUMER), (RESULTS_STREAM, PERSISTER_CONSUMER)):
        for kind in ("MAX_DELIVERIES", "MSG_TERMINATED"):
            dead_subjects.append(advisory_subject(kind, stream, consumer))
    await _ensure_stream(js, _stream_config(DEADLETTER_STREAM, dead_subjects, topo,
                                            max(MIN_STREAM_BYTES, topo.max_bytes // DEADLETTER_SHARE)))
    await _ensure_consumer(js, EVENTS_STREAM, consumer_config(ANALYZER_CONSUMER, EVENTS_SUBJECTS, topo))
    await _ensure_consumer(js, RESULTS_STREAM, consumer_config(PERSISTER_CONSUMER, RESULTS_SUBJECTS, topo))
    await _ensure_consumer(js, DEADLETTER_STREAM, consumer_config(
        REDRIVE_CONSUMER, advisory_subject("MAX_DELIVERIES", RESULTS_STREAM, PERSISTER_CONSUMER), topo))
    for bucket in (FINGERPRINT_KV, STATUS_KV):
        await _ensure_kv(js, bucket, topo)


_CONSUMER_FIELDS = ("filter_subject", "deliver_policy", "ack_policy", "ack_wait", "max_deliver", "backoff",
                    "max_ack_pending", "max_waiting")
_CONSUMER_ESSENTIAL = ("filter_subject", "deliver_policy", "ack_policy")  # what a worker relies on


def _consumer_differences(existing: api.ConsumerConfig, wanted: api.ConsumerConfig) -> list[str]:
    def same(a, b) -> bool:
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return abs(a - b) < 1e-3
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    return [name for name in _CONSUMER_FIELDS if not same(getattr(existing, name), getattr(wanted, name))]


async def _ensure_consumer(js, stream: str, config: api.ConsumerConfig) -> None:
    """Create the durable consumer, or update it where it differs (nothing written when it is as wanted)."""
    try:
        existing = (await js.consumer_info(stream, config.durable_name)).config
    except nats.js.errors.NotFoundError:
        existing = None
    if existing is None:
        await _write(js, f"consumer {config.durable_name} on stream {stream} does not exist",
                     lambda: js.add_consumer(stream, config), usable=False)
        return
    differences = _consumer_differences(existing, config)
    if differences:
        await _write(js, f"consumer {config.durable_name} on stream {stream} differs in " + ", ".join(
            f"{name} ({getattr(existing, name)!r}, wanted {getattr(config, name)!r})" for name in differences),
            lambda: js.add_consumer(stream, config), usable=not set(differences) & set(_CONSUMER_ESSENTIAL))


async def _ensure_kv(js, bucket: str, topo: Topology) -> None:
    """Create the bucket with direct gets (answered by any replica without the JetStream API's JSON and
    base64: the analyzer looks up every file's content id), or turn them on in a bucket made before."""
    try:
        kv = await js.key_value(bucket)
        if not kv._direct:  # nats-py's KeyValue keeps the stream's allow_direct as _direct
            stream = (await js.stream_info(kv._stream)).config
            stream.allow_direct = True
            await _write(js, f"KV bucket {bucket} has no direct gets", lambda: js.update_stream(stream), usable=True)
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
        try:
            await _write(js, f"KV bucket {bucket} does not exist", lambda: js.create_key_value(
                api.KeyValueConfig(bucket=bucket, history=1, storage=topo.storage, replicas=topo.num_replicas,
                                   direct=True)),
                usable=False)
        except nats.js.errors.BadRequestError as exc:
            if "already in use" not in str(exc):
                raise


async def bind_analyzer(js):
    """Pull subscription on the durable ``analyzer`` consumer (ensure_topology first)."""
    return await js.pull_subscribe_bind(consumer=ANALYZER_CONSUMER, stream=EVENTS_STREAM)


async def bind_persister(js):
    """Pull subscription on the durable ``persister`` consumer (ensure_topology first)."""
    return await js.pull_subscribe_bind(consumer=PERSISTER_CONSUMER, stream=RESULTS_STREAM)


async def bind_redrive(js):
    """Pull subscription on the persister's dead-letter re-drive consumer (ensure_topology first)."""
    return await js.pull_subscribe_bind(consumer=REDRIVE_CONSUMER, stream=DEADLETTER_STREAM)


async def fingerprint_kv(js):
    return await js.key_value(FINGERPRINT_KV)


async def cache_fingerprint(js, key: str, value: bytes) -> None:
    """Put ``value`` under ``key`` in the fingerprint KV bucket without awaiting the server's PubAck.

    The bucket is a cache (a content id already analysed is reused, not re-analysed), so a put the
    server refuses or loses costs at most one analysis later; waiting for its acknowledgement was a
    round trip per analysed file. The subject is the one ``KeyValue.put`` publishes to.
    """
    await js._nc.publish(f"$KV.{FINGERPRINT_KV}.{key}", value)


async def status_kv(js):
    return await js.key_value(STATUS_KV)


_FULL_MARKERS = ("maximum messages exceeded", "maximum bytes exceeded", "resource limits exceeded",
                 "insufficient resources")


async def publish(js, subject: str, payload: bytes, msg_id: str | None, *, timeout: float = 5.0) -> api.PubAck:
    """Publish and wait for the stream's PubAck.

    Raises :class:`StreamFullError` when the stream rejects the message
    because it is full (discard=new), :class:`BusError` for any other failure
    (no stream, timeout, disconnected). A duplicate (same ``msg_id`` inside
    the duplicate window) is a success with ``ack.duplicate`` True.
    """
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    try:
        return await js.publish(subject, payload, timeout=timeout, headers=headers)
    except nats.js.errors.APIError as exc:
        text = f"{exc.description or ''} {exc}".lower()
        if any(marker in text for marker in _FULL_MARKERS):
            raise StreamFullError(
                f"stream for {subject!r} is full (discard=new rejects new messages): {exc.description}; "
                "raise TRACKPRINT_STREAM_MAX_BYTES/MAX_MSGS or let consumers catch up"
            ) from exc
        raise BusError(f"publish to {subject!r} rejected: {exc}") from exc
    except (nats.errors.TimeoutError, asyncio.TimeoutError) as exc:
        raise BusError(f"publish to {subject!r}: no PubAck within {timeout} s (server down or slow?)") from exc
    except nats.js.errors.NoStreamResponseError as exc:
        raise BusError(f"publish to {subject!r}: no stream captures this subject (ensure_topology not run?)") from exc
    except nats.errors.Error as exc:
        raise BusError(f"publish to {subject!r} failed: {type(exc).__name__}: {exc}") from exc


PUBLISH_WINDOW = 256  # PubAcks outstanding at once in publish_many


async def publish_many(js, messages: Iterable[tuple[str, bytes, str | None]], *, window: int = PUBLISH_WINDOW,
                       timeout: float = 5.0) -> list[api.PubAck | BusError]:
    """Publish ``(subject, payload, msg_id)`` messages with at most ``window`` PubAcks outstanding.

    One result per message, in the order given: its PubAck, or the :class:`BusError` (or
    :class:`StreamFullError`) that :func:`publish` would have raised; nothing raises. The messages of
    one call are in flight together, so nothing orders them against each other: a caller that needs
    an order (two events of the same file) puts them in separate calls, the second after the first
    one's result.
    """
    slots = asyncio.Semaphore(max(1, window))

    async def one(subject: str, payload: bytes, msg_id: str | None) -> api.PubAck | BusError:
        async with slots:
            try:
                return await publish(js, subject, payload, msg_id, timeout=timeout)
            except BusError as exc:
                return exc

    return list(await asyncio.gather(*(one(*m) for m in messages)))


async def fetch(sub, batch: int, *, timeout: float = 1.0, lean: bool = False) -> list:
    """Up to ``batch`` messages; [] when none arrive in ``timeout`` (nats-py raises TimeoutError for that).

    Any other failure (disconnected: nats-py reconnects on its own) is logged
    and also gives [], after a short pause, so that run loops never spin or die.
    ``lean``: :func:`fetch_lean` instead of nats-py's ``fetch`` (the persister's large batches).
    """
    try:
        if lean:
            return await fetch_lean(sub, batch, timeout=timeout)
        return await sub.fetch(batch, timeout=timeout)
    except (nats.errors.TimeoutError, asyncio.TimeoutError):
        return []
    except nats.errors.ConnectionClosedError:
        raise
    except nats.errors.Error as exc:
        log.warning("fetch failed (%s: %s); retrying", type(exc).__name__, exc)
        await asyncio.sleep(1.0)
        return []


async def fetch_lean(psub, batch: int, *, timeout: float) -> list:
    """nats-py's ``PullSubscription.fetch(batch)``, the same requests, without its cost per message.

    As nats-py does it: what an earlier request left in the subscription's queue first, then a ``no_wait``
    request for what is waiting now, and only when that gave nothing, one request lingering until
    ``timeout``. The replies are taken straight from the subscription's queue under one deadline, where
    nats-py's ``next_msg`` starts a task and a timer for each message (at 500 messages a batch that was
    half the persister's event-loop time). Uses nats-py internals (``_sub``, ``_nms``, ``_deliver``).
    Raises ``TimeoutError`` when nothing came, as nats-py does.
    """
    sub, msgs = psub._sub, []
    queue = sub._pending_queue

    def take(msg) -> bool:
        """False when ``msg`` ends the request it answers (a status other than a heartbeat)."""
        sub._pending_size -= len(msg.data)
        status = msg.headers.get("Status") if msg.headers else None
        if not status:
            msgs.append(msg)
            return True
        if status == "100":  # idle heartbeat
            return True
        if status in ("404", "408", "409"):  # no messages, request expired, conflict: as nats-py, not errors
            return False
        raise nats.js.errors.APIError.from_msg(msg)

    async def request(**options) -> None:
        await psub._nc.publish(psub._nms, json.dumps({"batch": batch - len(msgs), **options}).encode(),
                               psub._deliver)
        while len(msgs) < batch and take(await queue.get()):
            pass

    while len(msgs) < batch and not queue.empty():  # leftovers; their statuses answered earlier requests
        msg = queue.get_nowait()
        if not (msg.headers and msg.headers.get("Status")):
            take(msg)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            if len(msgs) < batch:
                await request(no_wait=True)
            if not msgs:
                expires = int((deadline - asyncio.get_running_loop().time()) * 1e9) - 100_000
                if expires > 0:
                    await request(expires=expires)
    except TimeoutError:
        pass
    if not msgs:
        raise nats.errors.TimeoutError
    return msgs


async def close(nc: Client, subscriptions: Iterable[Any] = ()) -> None:
    """Unsubscribe pull subscriptions, then drain (draining with live pull subscriptions can hang)."""
    for sub in subscriptions:
        try:
            await sub.unsubscribe()
        except Exception as exc:  # already closed, connection gone
            log.debug("unsubscribe: %s", exc)
    if nc.is_closed:
        return
    try:
        await asyncio.wait_for(nc.drain(), timeout=10)
    except Exception as exc:
        log.warning("NATS drain failed (%s); closing", exc)
        try:
            await nc.close()
        except Exception:
            pass
