"""logferry/1 authentication: HMAC-SHA256 challenge-response over a per-source token.

The token never crosses the wire. Each side contributes a fresh random nonce (the client in Hello, the server
in Challenge); the client proves it knows the token with ``client_mac`` (sent in Auth) and the server proves
it too with ``server_mac`` (sent in Welcome). The two macs use different domain-separation labels, so a
client mac can never be reflected back as a server mac, and both cover the negotiated version and the
source, so a mac cannot be replayed for another source or a downgraded version.

Exact bytes hashed (``||`` is concatenation, ``u32`` a 4-byte big-endian unsigned integer)::

    label         = b"logferry/1 client auth"  (client_mac)   or   b"logferry/1 server auth"  (server_mac)
    message       = u32(len(label))        || label
                 || u32(version)
                 || u32(len(source_utf8))  || source_utf8
                 || u32(len(server_nonce)) || server_nonce
                 || u32(len(client_nonce)) || client_nonce
    mac           = HMAC-SHA256(key=token, msg=message)             (32 bytes)

Every variable-length part is length-prefixed, so no two different inputs hash the same bytes.

This module must never generate nonces or read a clock (the caller passes fresh nonces in, from
``os.urandom``), never log or return a token, and never compare macs with ``==`` (``verify`` is
constant-time).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from logferry.protocol.messages import MAC_BYTES

CLIENT_LABEL = b"logferry/1 client auth"
SERVER_LABEL = b"logferry/1 server auth"

_U32 = struct.Struct(">I")


def _part(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def mac_input(label: bytes, version: int, source: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The exact message that is HMAC'd (public so the documented layout can be tested byte for byte)."""
    return b"".join(
        (
            _part(label),
            _U32.pack(version),
            _part(source.encode("utf-8")),
            _part(server_nonce),
            _part(client_nonce),
        )
    )


def _mac(token: bytes, message: bytes) -> bytes:
    if not token:
        # An empty key would make every mac computable by anyone; refuse rather than authenticate nothing.
        raise ValueError("an authentication token must not be empty")
    return hmac.new(token, message, hashlib.sha256).digest()


def client_mac(token: bytes, version: int, source: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """What the client sends in Auth: proof that it holds ``token`` for ``source``."""
    return _mac(token, mac_input(CLIENT_LABEL, version, source, server_nonce, client_nonce))


def server_mac(token: bytes, version: int, source: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """What the server sends in Welcome: proof that it holds the same token."""
    return _mac(token, mac_input(SERVER_LABEL, version, source, server_nonce, client_nonce))


def verify(expected: bytes, got: bytes) -> bool:
    """Constant-time comparison; a mac of the wrong length is simply wrong."""
    if len(got) != MAC_BYTES:
        return False
    return hmac.compare_digest(expected, got)
