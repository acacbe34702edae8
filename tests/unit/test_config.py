"""Config loading: defaults, the packaged examples, overrides, addresses and the check report."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import msgspec
import pytest

from logferry.config import (
    Action,
    AgentConfig,
    CollectorConfig,
    Compression,
    Durability,
    RelayConfig,
    Role,
    TailInput,
    check_file,
    device_tokens,
    example_text,
    load,
    load_agent,
    load_collector,
    load_relay,
    parse_address,
    read_token,
    with_overrides,
)
from logferry.config.docgen import TABLES
from logferry.errors import ConfigError
from logferry.pipeline import RuleSet

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "logferry" / "examples"


def test_defaults_without_a_file() -> None:
    agent = load_agent()
    assert agent.source == socket.gethostname()
    assert (agent.relay, agent.durability, agent.compression) == (
        "127.0.0.1:5170",
        Durability.NORMAL,
        Compression.ZSTD,
    )
    assert (agent.batch_max_records, agent.batch_max_wait_s, agent.inputs) == (1000, 0.01, [])
    relay = load_relay()
    assert (relay.listen, relay.collector, relay.credit) == ("127.0.0.1:5170", "127.0.0.1:5171", 64)
    assert (relay.max_frame_bytes, relay.durability, relay.default_action) == (
        8 << 20,
        Durability.FULL,
        Action.FORWARD,
    )
    assert RuleSet.from_config(relay.rules, relay.default_action).is_trivial
    collector = load_collector()
    assert (collector.listen, collector.data_dir) == ("127.0.0.1:5171", "./logferry-data/collector")
    assert isinstance(load("collector"), CollectorConfig)


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    p = tmp_path / "relay.toml"
    p.write_text("[relay]\n")
    assert load(Role.RELAY, p) == load(Role.RELAY, None)
    p.write_text("")
    assert load(Role.RELAY, p) == load(Role.RELAY, None)


@pytest.mark.parametrize("role", list(Role))
def test_every_example_is_valid(role: Role) -> None:
    report = check_file(EXAMPLES / f"{role.value}.toml")
    assert report.ok, report.problems
    assert report.role is role
    assert "OK" in report.summary
    assert example_text(role) == (EXAMPLES / f"{role.value}.toml").read_text()


@pytest.mark.parametrize("name", list(TABLES))
def test_every_option_appears_in_its_example(name: str) -> None:
    """``logferry init`` writes the example: it must show every option, commented out or not."""
    text = example_text(name.split(".", maxsplit=1)[0])  # "relay.rules" -> the relay example
    missing = [
        f.name
        for f in msgspec.structs.fields(TABLES[name][1])
        if not re.search(rf"^#?\s*{f.name}\s*=|\b{f.name} = |^#?\s*\[\[\w+\.{f.name}\]\]", text, re.M)
    ]
    role = name.split(".", maxsplit=1)[0]
    assert not missing, f"{name}: add these options to examples/{role}.toml: {missing}"


def test_relay_example_rules_do_what_the_doc_says() -> None:
    relay = load_relay(EXAMPLES / "relay.toml")
    assert [r.name for r in relay.rules] == [
        "hold-cardholder",
        "redact-credentials",
        "drop-debug",
        "drop-health-checks",
    ]


def test_agent_inputs_are_tagged(tmp_path: Path) -> None:
    p = tmp_path / "agent.toml"
    p.write_text(
        '[[agent.inputs]]\ntype = "tail"\npaths = ["/a/*.log"]\n\n[[agent.inputs]]\ntype = "stdin"\n'
    )
    agent = load_agent(p)
    assert isinstance(agent.inputs[0], TailInput)
    assert agent.inputs[0].paths == ["/a/*.log"]
    assert type(agent.inputs[1]).__name__ == "StdinInput"


def test_overrides_are_validated_like_the_file() -> None:
    relay = load_relay(None, {"relay.listen": "0.0.0.0:0", "credit": "8", "durability": "normal"})
    assert (relay.listen, relay.credit, relay.durability) == ("0.0.0.0:0", 8, Durability.NORMAL)
    relay2 = with_overrides(relay, {"devices.edge-1": "tok", "allow_unknown_devices": "true"})
    assert isinstance(relay2, RelayConfig)
    assert relay2.devices == {"edge-1": "tok"}
    assert relay2.allow_unknown_devices is True
    with pytest.raises(ConfigError) as info:
        with_overrides(relay, {"relay.credit": "many"})
    assert str(info.value) == 'command line: relay.credit: expected an integer >= 1, got "many"'
    with pytest.raises(ConfigError, match=r'relay\.lisen: unknown key; did you mean "listen"\?'):
        with_overrides(relay, {"lisen": "x"})


def test_overrides_apply_after_the_file(tmp_path: Path) -> None:
    p = tmp_path / "agent.toml"
    p.write_text('[agent]\nsource = "edge-1"\nrelay = "10.0.0.1:5170"\n')
    agent = load(Role.AGENT, p, {"agent.relay": "[::1]:5170"})
    assert isinstance(agent, AgentConfig)
    assert (agent.source, agent.relay) == ("edge-1", "[::1]:5170")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5170", ("127.0.0.1", 5170)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("relay.example.org:65535", ("relay.example.org", 65535)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:5170", ("::1", 5170)),
        ("[::]:0", ("::", 0)),
        ("[fe80::1]:80", ("fe80::1", 80)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "5170", "host", "host:", ":5170", "host:65536", "host:-1", "::1:5170", "[::1]", "[zz]:1", "a b:1"],
)
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match=r'expected "host:port"'):
        parse_address(text)


def test_unknown_peers_are_allowed_only_while_none_is_listed() -> None:
    assert load_relay().accepts_unknown_devices()
    assert not load_relay(None, {"devices.edge-1": "t"}).accepts_unknown_devices()
    assert load_relay(None, {"devices.edge-1": "t", "allow_unknown_devices": True}).accepts_unknown_devices()
    assert load_collector().accepts_unknown_relays()
    assert not load_collector(None, {"relays.site-a": "t"}).accepts_unknown_relays()


def test_tokens_from_files(tmp_path: Path) -> None:
    tok = tmp_path / "agent.token"
    tok.write_text("s3cret\n")
    devices = tmp_path / "devices.toml"
    devices.write_text('edge-2 = "two"\n')
    p = tmp_path / "relay.toml"
    p.write_text(
        f'[relay]\ntoken_file = "{tok}"\ndevices = {{ edge-1 = "one" }}\ndevices_file = "{devices}"\n'
    )
    relay = load_relay(p)
    assert read_token(relay.token, relay.token_file, "relay.token_file") == "s3cret"
    assert device_tokens(relay) == {"edge-1": "one", "edge-2": "two"}
    assert read_token("inline", "", "agent.token") == "inline"


def test_check_report_lists_every_problem(tmp_path: Path) -> None:
    p = tmp_path / "relay.toml"
    p.write_text('[relay]\nlisten = "nowhere"\ncredit = 0\n[[relay.rules]]\nname = "a"\naction = "keep"\n')
    report = check_file(p)
    assert not report.ok
    assert report.lines() == [
        f'{p}: relay.listen: expected "host:port" (IPv6 as "[::1]:5170"; port 0-65535, 0 lets the OS pick), '
        'got "nowhere"',
        f"{p}: relay.credit: expected an integer >= 1, got 0",
        f'{p}: relay.rules[0].action: expected one of forward, hold, drop, redact, got "keep"',
    ]


def test_check_finds_the_role_or_says_it_cannot(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text("[agent]\n[relay]\n")
    report = check_file(p)
    assert report.problems == [
        f"{p}: expected exactly one of the tables [agent], [relay], [collector], found 2",
    ]
    assert check_file(p, Role.AGENT).problems == [
        f"{p}: relay: this is agent configuration, which has no [relay] table (one file per role)"
    ]


def test_load_raises_the_first_problem_with_the_rest_as_notes(tmp_path: Path) -> None:
    p = tmp_path / "collector.toml"
    p.write_text("[collector]\ncredit = 0\nheartbeat_s = -1\n")
    with pytest.raises(ConfigError) as info:
        load_collector(p)
    assert info.value.key == "collector.credit"
    assert info.value.path == str(p)
    assert info.value.__notes__[0] == f"{p}: collector.heartbeat_s: expected a number > 0, got -1"
