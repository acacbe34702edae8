"""The HMAC challenge-response: the documented byte layout, domain separation and constant-time verify."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from logferry.protocol import auth

TOKEN = b"s3cret-token"
NONCE_S = bytes(range(0xA0, 0xB0))
NONCE_C = bytes(range(16))


def test_mac_input_layout_is_exactly_the_documented_one() -> None:
    # Written out by hand from docs/PROTOCOL.md, not built with the code under test.
    expected = (
        b"\x00\x00\x00\x16" + b"logferry/1 client auth"
        + b"\x00\x00\x00\x01"
        + b"\x00\x00\x00\x07" + b"agent-1"
        + b"\x00\x00\x00\x10" + NONCE_S
        + b"\x00\x00\x00\x10" + NONCE_C
    )  # fmt: skip
    assert auth.mac_input(auth.CLIENT_LABEL, 1, "agent-1", NONCE_S, NONCE_C) == expected
    assert (
        auth.client_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C)
        == hmac.new(TOKEN, expected, hashlib.sha256).digest()
    )


def test_known_vector() -> None:
    # Pinned so that an independent implementation can check itself against this one.
    assert auth.client_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C).hex() == (
        "fe4b3072a2f316b520c76cac6424990c30252542b9f9ca0392b710c13ba356be"
    )


def test_client_and_server_macs_differ_so_a_mac_cannot_be_reflected() -> None:
    args = (TOKEN, 1, "agent-1", NONCE_S, NONCE_C)
    assert auth.client_mac(*args) != auth.server_mac(*args)


@pytest.mark.parametrize(
    "changed",
    [
        (b"other-token", 1, "agent-1", NONCE_S, NONCE_C),
        (TOKEN, 2, "agent-1", NONCE_S, NONCE_C),
        (TOKEN, 1, "agent-2", NONCE_S, NONCE_C),
        (TOKEN, 1, "agent-1", NONCE_C, NONCE_S),  # nonces swapped
        (TOKEN, 1, "agent-1", NONCE_S, bytes(16)),
    ],
)
def test_every_input_matters(changed: tuple[bytes, int, str, bytes, bytes]) -> None:
    assert auth.client_mac(*changed) != auth.client_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C)


def test_length_prefixes_prevent_ambiguous_concatenation() -> None:
    # Without length prefixes, moving a byte from the source into the nonce would hash the same bytes.
    a = auth.mac_input(auth.CLIENT_LABEL, 1, "ab", b"c" + NONCE_S[1:], NONCE_C)
    b = auth.mac_input(auth.CLIENT_LABEL, 1, "abc", NONCE_S[1:], NONCE_C)
    assert a != b


def test_verify() -> None:
    mac = auth.client_mac(TOKEN, 1, "agent-1", NONCE_S, NONCE_C)
    assert auth.verify(mac, mac)
    assert not auth.verify(mac, mac[:-1] + bytes([mac[-1] ^ 1]))
    assert not auth.verify(mac, mac[:16])
    assert not auth.verify(mac, b"")


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        auth.client_mac(b"", 1, "agent-1", NONCE_S, NONCE_C)
