"""Wire format between the trusted grader (parent) and the clean-room harness (inside the sandbox).

Every message is ``length (4 bytes, big endian) | payload (JSON, UTF-8) | MAC (32 bytes)``. The MAC is an
HMAC-SHA256 over ``sequence number | payload`` with a session key that the parent hands to the harness before
any student code runs. Verdicts carry a second seal, an HMAC over a fixed byte string
(``verdict|<sequence>|<cell>|<passed>``) with a per-test secret that travels with the test's source just in
time. The harness builds that byte string from captured C functions only, so a patched ``json`` cannot change
what is sealed.

This module is imported by the parent only: the harness carries its own copy of the few lines it needs
(it must not import anything from the course's tree).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct

MAC_LEN = 32
MAX_MESSAGE = 64 * 1024 * 1024  # a message larger than this is a protocol violation


class ProtocolError(Exception):
    """The other side sent something that is not a valid, authenticated message in sequence."""


def mac(key: bytes, seq: int, payload: bytes) -> bytes:
    return hmac.new(key, b"%d|" % seq + payload, hashlib.sha256).digest()


def verdict_seal(secret: bytes, seq: int, cell: int, passed: bool) -> bytes:
    """The seal of one verdict; the harness computes the same bytes with _hashlib.hmac_digest."""
    return hmac.new(secret, b"verdict|%d|%d|%d" % (seq, cell, int(passed)), hashlib.sha256).digest()


def encode(key: bytes, seq: int, obj: dict) -> bytes:
    payload = json.dumps(obj).encode()
    return struct.pack(">I", len(payload)) + payload + mac(key, seq, payload)


def new_secret() -> bytes:
    return os.urandom(32)


def decode(key: bytes, seq: int, frame: bytes) -> dict:
    """Check the MAC of one complete frame (length prefix included) and return its payload."""
    (length,) = struct.unpack(">I", frame[:4])
    payload, tag = frame[4 : 4 + length], frame[4 + length :]
    if len(payload) != length or len(tag) != MAC_LEN:
        raise ProtocolError("truncated message")
    if not hmac.compare_digest(tag, mac(key, seq, payload)):
        raise ProtocolError(f"message {seq} is not authenticated (written by the submission?)")
    try:
        obj = json.loads(payload)
    except ValueError as err:
        raise ProtocolError(f"message {seq} is not JSON: {err}") from None
    if not isinstance(obj, dict) or "type" not in obj:
        raise ProtocolError(f"message {seq} has no type")
    return obj
