"""Many small files in one frame (protocol version 2, docs/PROTOCOL.md §13.7) in the sans-IO core: a
bundle and its one answer, its bounds, what either side refuses, the exact bytes fed whole and split at
every offset (in test_protocol_files.py's PINNED), and a version-1 session on which bundles do not exist."""

from __future__ import annotations

from typing import Any, cast

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from logferry.errors import LocalProtocolError, RemoteProtocolError
from logferry.protocol import server as server_module
from logferry.protocol.connection import (
    BundleAnswered,
    BundleReceived,
)
from logferry.protocol.files import (
    BUNDLE_FILES,
    BUNDLES_IN_FLIGHT,
    Key,
    check_bundle,
    entries_fit,
    first_entry_problem,
)
from logferry.protocol.framing import encode_frame
from logferry.protocol.messages import (
    BundledFile,
    Code,
    FileBundle,
    FileBundleAck,
    FileNack,
    FileOffer,
    PeerRole,
)
from tests.unit.test_protocol_files import back, pair, relay

SHA = bytes(32)


def entry(seq: int, source: str = "dev-a/files", data: bytes = b"abc") -> BundledFile:
    return BundledFile(source, seq, f"f{seq}", len(data), 5, SHA, data)


def test_a_bundle_is_answered_once_for_all_its_files() -> None:
    client, server = pair()
    assert client.bundles and client.version == 2
    bundle = FileBundle(1, [entry(1), entry(2), entry(3)])
    assert relay(server, client.send_bundle(bundle, 0.0)) == BundleReceived(bundle)
    nack = FileNack("dev-a/files", 2, int(Code.MALFORMED), "does not hash to its sha256", False)
    assert back(client, server.file_bundle_ack(1, [nack])) == BundleAnswered(FileBundleAck(1, [nack]))
    # the id is free again, and the files may travel again (one by one, or in another bundle)
    assert relay(server, client.send_bundle(FileBundle(1, [entry(2)]), 0.0)) == BundleReceived(
        FileBundle(1, [entry(2)])
    )
    assert back(client, server.file_bundle_ack(1, [])) == BundleAnswered(FileBundleAck(1, []))


def test_bundles_in_flight_are_bounded_on_both_sides() -> None:
    client, server = pair()
    for n in range(1, BUNDLES_IN_FLIGHT + 1):
        relay(server, client.send_bundle(FileBundle(n, [entry(n)]), 0.0))
    assert not client.bundle_room
    with pytest.raises(LocalProtocolError, match="await their FileBundleAck"):
        client.send_bundle(FileBundle(99, [entry(99)]), 0.0)
    back(client, server.file_bundle_ack(2, []))
    assert client.bundle_room
    relay(server, client.send_bundle(FileBundle(2, [entry(2)]), 0.0))
    with pytest.raises(RemoteProtocolError) as info:  # a client that does not count is cut off
        relay(server, encode_frame(FileBundle(99, [entry(99)])))
    assert info.value.code == Code.CREDIT_EXCEEDED


@pytest.mark.parametrize(
    ("bundle", "match"),
    [
        (FileBundle(1, []), "carries 0 files"),
        (FileBundle(1, [entry(n) for n in range(1, BUNDLE_FILES + 2)]), f"carries {BUNDLE_FILES + 1} files"),
        (FileBundle(1, [entry(1), entry(1)]), "in transfer already"),
        (FileBundle(1, [entry(0)]), "impossible seq"),
        (
            FileBundle(1, [BundledFile("dev-a/files", 1, "f", 4, 5, SHA, b"abc")]),
            "carries 3 bytes, not its size 4",
        ),
    ],
)
def test_a_malformed_bundle_is_refused_by_both_sides(bundle: FileBundle, match: str) -> None:
    client, server = pair()
    with pytest.raises(LocalProtocolError, match=match):
        client.send_bundle(bundle, 0.0)
    with pytest.raises(RemoteProtocolError, match=match):
        relay(server, encode_frame(bundle))


def test_a_file_is_in_one_transfer_at_a_time() -> None:
    client, server = pair()
    offer = FileOffer("dev-a/files", 1, "f1", 3, 5, SHA)
    relay(server, client.offer_file(offer, 0.0))
    with pytest.raises(LocalProtocolError, match="in transfer already"):
        client.send_bundle(FileBundle(1, [entry(1)]), 0.0)
    with pytest.raises(RemoteProtocolError, match="in transfer already"):
        relay(server, encode_frame(FileBundle(1, [entry(1)])))
    client, server = pair()
    relay(server, client.send_bundle(FileBundle(1, [entry(2)]), 0.0))
    with pytest.raises(LocalProtocolError, match="already in transfer"):
        client.offer_file(FileOffer("dev-a/files", 2, "f2", 3, 5, SHA), 0.0)
    with pytest.raises(RemoteProtocolError, match="in transfer already"):
        relay(server, encode_frame(FileOffer("dev-a/files", 2, "f2", 3, 5, SHA)))


def test_an_agent_bundles_its_own_files_only_and_a_relay_any_source() -> None:
    _, server = pair()
    with pytest.raises(RemoteProtocolError) as info:
        relay(server, encode_frame(FileBundle(1, [entry(1), entry(2, source="dev-b/files")])))
    assert info.value.code == Code.SOURCE_MISMATCH
    client, server = pair(PeerRole.RELAY)
    bundle = FileBundle(1, [entry(1), entry(2, source="dev-b/files")])
    assert relay(server, client.send_bundle(bundle, 0.0)) == BundleReceived(bundle)


def test_answers_that_fit_no_bundle_are_protocol_errors() -> None:
    client, server = pair()
    relay(server, client.send_bundle(FileBundle(1, [entry(1)]), 0.0))
    with pytest.raises(LocalProtocolError):  # the server may refuse only what the bundle carried
        server.file_bundle_ack(1, [FileNack("dev-a/files", 9, 6, "x", True)])
    with pytest.raises(RemoteProtocolError, match="awaits no answer"):
        back(client, encode_frame(FileBundleAck(2, [])))
    client, _ = pair()
    client.send_bundle(FileBundle(1, [entry(1)]), 0.0)
    with pytest.raises(RemoteProtocolError, match="did not carry"):
        back(client, encode_frame(FileBundleAck(1, [FileNack("dev-a/files", 9, 6, "x", True)])))


def test_a_bundle_over_the_servers_frame_limit_is_refused_locally() -> None:
    client, _ = pair()
    big = [entry(n, data=bytes(100_000)) for n in range(1, 12)]
    with pytest.raises(LocalProtocolError, match="over the limit") as info:
        client.send_bundle(FileBundle(1, big), 0.0)
    assert info.value.code == Code.TOO_LARGE


def test_a_version_1_session_has_no_bundles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "SUPPORTED_VERSIONS", (1,))  # an older server
    client, server = pair()
    assert client.version == server.version == 1 and not client.bundles and not client.bundle_room
    with pytest.raises(LocalProtocolError, match="needs version 2"):
        client.send_bundle(FileBundle(1, [entry(1)]), 0.0)
    with pytest.raises(RemoteProtocolError, match="needs protocol version 2") as info:
        relay(server, encode_frame(FileBundle(1, [entry(1)])))
    assert info.value.code == Code.PROTOCOL


_entries = st.builds(
    BundledFile,
    st.sampled_from(["dev-a/files", "dev-b/files"]),
    st.integers(-1, 6),  # seq: 0 and -1 are impossible
    st.just("f"),
    st.integers(-1, 4),  # size: -1 is impossible
    st.sampled_from([-1, 0, 5]),  # mtime_ns
    st.sampled_from([SHA, SHA[:31]]),
    st.binary(max_size=4),  # data: of another length than size sometimes
)
_keys = st.sets(st.tuples(st.sampled_from(["dev-a/files", "dev-b/files"]), st.integers(1, 6)), max_size=3)


@settings(max_examples=400, deadline=None)
@given(
    files=st.lists(_entries, min_size=1, max_size=6),
    open_keys=st.lists(_keys, max_size=BUNDLES_IN_FLIGHT - 1),
    transfers=_keys,
)
def test_the_quick_pass_passes_exactly_the_bundles_whose_entries_have_no_problem(
    files: list[BundledFile], open_keys: list[set[Key]], transfers: set[Key]
) -> None:
    bundle = FileBundle(100, files)
    open_bundles = dict(enumerate(open_keys))
    problem = first_entry_problem(bundle, open_bundles, transfers)
    assert entries_fit(bundle, open_bundles, transfers) == (problem is None)
    assert check_bundle(bundle, open_bundles, dict.fromkeys(transfers, cast(Any, None))) == problem
