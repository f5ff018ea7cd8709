#!/usr/bin/env python3
"""Secrets of trackprint's NATS bus: a CA, the servers' TLS certificate, one user per role.

    python3 deploy/nats/make-secrets.py OUT_DIR --host nats1.example.lan --host nats2.example.lan ...

writes into OUT_DIR (mode 0700; every file 0600):

- ``ca.pem`` / ``ca.key``: the CA (keep ca.key offline); clients verify the servers with
  ``ca.pem`` (``TRACKPRINT_NATS_CA_FILE``);
- ``server-cert.pem`` / ``server-key.pem``: the servers' certificate, valid for every ``--host``
  (and localhost / 127.0.0.1), used for client and cluster connections;
- ``nats-<role>.password`` for watcher, analyzer, persister and admin
  (``TRACKPRINT_NATS_PASSWORD_FILE``);
- ``auth.conf``: the ``authorization`` block (bcrypt hashes, never the passwords) that
  ``node.conf.template`` includes.

Permissions (:data:`ROLES`): a service gets only what it does at run time. A role publishes only
its own messages, so a stolen or buggy credential cannot forge another role's: only the watcher
publishes file events, only analyzers publish results; it pulls and acknowledges only its own
durable consumer. No service may create, change, delete or purge a stream, consumer or KV bucket,
delete a message or confirm a held mass deletion: ``admin`` sets up the topology (``trackprint
topology``; the services then only verify it) and may do everything (a person: topology, status,
replay, confirm-deletions).

Needs python3 (stdlib) and the openssl command. Run again with new hosts to re-issue the
certificate; existing passwords and the CA are kept unless ``--rotate``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

# What every service may ask JetStream: read-only calls (account, stream and consumer info, names and
# lists), enough for ensure_topology to verify the topology the admin set up, for status reports and for
# binding to a durable consumer. Nothing here writes.
COMMON = [
    "$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
    "$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.NAMES.>", "$JS.API.CONSUMER.LIST.>",
]
# Never for a service, whatever its allow list says (deny wins): the topology (streams, consumers, KV
# buckets: the admin's `trackprint topology`), deleting or purging anything, confirming a held mass deletion.
NEVER = [
    "$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>",
    "$JS.API.CONSUMER.DELETE.>", "$KV.trackprint_status.confirm-deletions.>",
]


def pulls(stream: str, consumer: str) -> list[str]:
    """Fetch from, and acknowledge (ack, nak, term, in-progress) the deliveries of, one durable consumer."""
    return [f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>", f"$JS.ACK.*.*.{stream}.{consumer}.>"]  # v1 and v2 (domain) replies


def reads(stream: str) -> list[str]:
    """Single-message reads of one stream: by sequence (STREAM.MSG.GET) and direct gets, also the last
    message of a subject (a KV get)."""
    return [f"$JS.API.STREAM.MSG.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>"]


ROLES = {
    # file events; its health report; reads the confirmations of held deletions (status KV)
    "watcher": ["trackprint.events.>", "$KV.trackprint_status.watcher.>", *reads("KV_trackprint_status")],
    # pulls events; publishes results and dead letters; the fingerprints cache (get and put); its report
    "analyzer": ["trackprint.results.>", "trackprint.deadletter.>", "$KV.fingerprints_by_content.>",
                 *reads("KV_fingerprints_by_content"), "$KV.trackprint_status.analyzer.>",
                 *pulls("TRACKPRINT_EVENTS", "analyzer")],
    # pulls results and re-drives dead-lettered ones; reads the events results name and the originals of
    # dead letters; its report
    "persister": ["$KV.trackprint_status.persister.>", *pulls("TRACKPRINT_RESULTS", "persister"),
                  *pulls("TRACKPRINT_DEADLETTER", "persister-redrive"), *reads("TRACKPRINT_EVENTS"),
                  *reads("TRACKPRINT_RESULTS"), *reads("TRACKPRINT_DEADLETTER")],
    # a person: `trackprint topology` (creates and updates streams, consumers, KV buckets), status, replay and
    # replay --reanalyse (temporary consumers), confirm-deletions
    "admin": None,  # everything
}


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash nats-server accepts ($2b$), from the C library's crypt (or the bcrypt package)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated in 3.11, gone in 3.13: then the bcrypt package

        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 11))
        if hashed and hashed.startswith("$2"):
            return hashed
    except ImportError:
        pass
    try:
        import bcrypt
    except ImportError:
        sys.exit("make-secrets: no bcrypt: use Python <= 3.12 (module crypt) or `pip install bcrypt`")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(11)).decode()


def _quoted(items: list[str]) -> str:
    return "[" + ", ".join(f'"{s}"' for s in items) + "]"


def auth_conf(hashes: dict[str, str]) -> str:
    lines = ["# Generated by deploy/nats/make-secrets.py: users and permissions of trackprint's bus.",
             "authorization {", "  users = ["]
    for role, own in ROLES.items():
        user = f'    {{ user: "{role}", password: "{hashes[role]}"'
        if own is not None:
            user += (f",\n      permissions: {{ publish: {{ allow: {_quoted(COMMON + own)}, deny: {_quoted(NEVER)} }},"
                     f"\n                     subscribe: {{ allow: [\"_INBOX.>\"] }} }}")
        lines.append(user + " }")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def _write(path: Path, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def certificates(out: Path, hosts: list[str], rotate: bool) -> None:
    if rotate or not (out / "ca.key").exists():
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", str(out / "ca.key"), "-out", str(out / "ca.pem"), "-days", "3650",
                 "-subj", "/CN=trackprint NATS CA")
    names = list(dict.fromkeys(["localhost", "127.0.0.1", *hosts]))
    san = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in names)
    with tempfile.TemporaryDirectory() as tmp:
        ext = Path(tmp) / "ext.cnf"
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
        csr = Path(tmp) / "server.csr"
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", str(out / "server-key.pem"), "-out", str(csr), "-subj", f"/CN={names[-1]}")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(out / "ca.pem"), "-CAkey", str(out / "ca.key"),
                 "-CAcreateserial", "-CAserial", str(Path(tmp) / "ca.srl"), "-out", str(out / "server-cert.pem"), "-days", "825", "-extfile", str(ext))
    for name in ("ca.key", "ca.pem", "server-key.pem", "server-cert.pem"):
        os.chmod(out / name, 0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for the secrets (created, mode 0700)")
    parser.add_argument("--host", action="append", default=[], help="a NATS server's name or IP (repeat)")
    parser.add_argument("--rotate", action="store_true", help="new CA and new passwords even if they exist")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.chmod(args.out, 0o700)
    certificates(args.out, args.host, args.rotate)
    hashes = {}
    for role in ROLES:
        path = args.out / f"nats-{role}.password"
        if args.rotate or not path.exists():
            _write(path, secrets.token_urlsafe(24) + "\n")
        hashes[role] = bcrypt_hash(path.read_text().strip())
    _write(args.out / "auth.conf", auth_conf(hashes))
    print(f"make-secrets: wrote {args.out}: ca.pem, server-cert.pem/-key.pem, auth.conf, "
          f"nats-{{{','.join(ROLES)}}}.password")
    return 0


if __name__ == "__main__":
    sys.exit(main())
