"""Every config error names the file, the key path, what is wrong and what is expected — exactly."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logferry.config import Role, check_file, load
from logferry.config.validate import validate_document
from logferry.errors import ConfigError
from logferry.model import make_record
from logferry.pipeline import RuleSet
from logferry.pipeline.rule_config import Action, RuleConfig

RELAY_KEYS = """
credit max_frame_bytes heartbeat_s handshake_timeout_s idle_timeout_s write_timeout_s durability
shutdown_timeout_s api_token api_token_file name data_dir listen collector api_listen token token_file
devices devices_file file_keep_bytes
allow_unknown_devices compression outbox_keep_bytes reconcile_interval_s resend_policy default_action rules
syslog_listen syslog_max_message_bytes line_listen line_max_message_bytes line_idle_s line_reply
line_invalid_reply tls_cert tls_key tls_client_ca tls_client_auth collector_tls collector_ca collector_cert
collector_key collector_server_name syslog_tls_listen syslog_tls_cert syslog_tls_key syslog_tls_client_ca
syslog_tls_client_auth users session_idle_s session_ttl_s"""
ADDR = '"host:port" (IPv6 as "[::1]:5170"; port 0-65535, 0 lets the OS pick)'

# (role, file text, the problems `logferry config check` prints, with FILE standing for the path)
CASES: list[tuple[str, str, list[str]]] = [
    ("relay", "[relay]\nlisten = \n", ["FILE: line 2, column 10: invalid TOML: Invalid value"]),
    (
        "relay",
        "[relay\n",
        ["FILE: line 1, column 7: invalid TOML: Expected ']' at the end of a table declaration"],
    ),
    (
        "relay",
        '[relay]\nname = "a"\nname = "b"\n',
        ["FILE: line 3, column 11: invalid TOML: Cannot overwrite a value"],
    ),
    ("relay", '[relay]\ncolector = "x"\n', ['FILE: relay.colector: unknown key; did you mean "collector"?']),
    (
        "relay",
        "[relay]\nzzz = 1\n",
        ["FILE: relay.zzz: unknown key; expected one of " + ", ".join(sorted(RELAY_KEYS.split()))],
    ),
    ("relay", '[rely]\nlisten = "127.0.0.1:1"\n', ['FILE: rely: unknown key; did you mean "relay"?']),
    (
        "relay",
        "[collector]\n",
        ["FILE: collector: this is relay configuration, which has no [collector] table (one file per role)"],
    ),
    ("relay", '[relay]\ncredit = "lots"\n', ['FILE: relay.credit: expected an integer >= 1, got "lots"']),
    ("relay", "[relay]\ncredit = 0\n", ["FILE: relay.credit: expected an integer >= 1, got 0"]),
    ("relay", "[relay]\nheartbeat_s = true\n", ["FILE: relay.heartbeat_s: expected a number > 0, got true"]),
    (
        "relay",
        "[relay]\ndevices = { edge-1 = 5 }\n",
        ["FILE: relay.devices.edge-1: expected a string, got 5"],
    ),
    (
        "relay",
        '[relay]\ndurability = "fast"\n',
        ['FILE: relay.durability: expected one of full, normal, got "fast"'],
    ),
    ("relay", '[relay]\nlisten = "localhost"\n', [f'FILE: relay.listen: expected {ADDR}, got "localhost"']),
    (
        "relay",
        '[relay]\ncollector = "::1:5171"\n',
        [f'FILE: relay.collector: expected {ADDR}, got "::1:5171": put an IPv6 address in brackets'],
    ),
    (
        "relay",
        '[relay]\nlisten = "127.0.0.1:70000"\n',
        [f'FILE: relay.listen: expected {ADDR}, got "127.0.0.1:70000"'],
    ),
    ("relay", "[relay]\nlisten = 5170\n", ['FILE: relay.listen: expected "host:port", got 5170']),
    (
        "relay",
        "[relay]\nheartbeat_s = 30\n",
        ["FILE: relay.idle_timeout_s: expected more than heartbeat_s (30.0), got 30.0"],
    ),
    (
        "relay",
        '[relay]\ndefault_action = "redact"\n',
        ['FILE: relay.default_action: expected one of forward, hold, drop, got "redact"'],
    ),
    (
        "relay",
        '[[relay.rules]]\nname = "r"\naction = "keep"\n',
        ['FILE: relay.rules[0].action: expected one of forward, hold, drop, redact, got "keep"'],
    ),
    (
        "relay",
        '[[relay.rules]]\nnmae = "r"\naction = "drop"\n',
        [
            'FILE: relay.rules[0].nmae: unknown key; did you mean "name"?',
            "FILE: relay.rules[0].name: missing; expected a non-empty string",
        ],
    ),
    (
        "relay",
        '[[relay.rules]]\nname = "r"\naction = "hold"\nmessage = \'(card\'\n',
        [
            'FILE: relay.rules[0].message: invalid regex in rule "r": missing ), unterminated subpattern at '
            "position 0 "
            "(regex: '(card')"
        ],
    ),
    (
        "relay",
        '[[relay.rules]]\nname = "r"\naction = "hold"\nlevel = ">=loud"\n',
        [
            "FILE: relay.rules[0].level: expected a level name (emergency, alert, critical, error, warning, "
            "notice, info, "
            'debug), optionally after >=, >, <=, <, = or !=, got ">=loud"'
        ],
    ),
    (
        "relay",
        '[[relay.rules]]\nname = "r"\naction = "hold"\nfields = { status = 1.5 }\n',
        [
            "FILE: relay.rules[0].fields.status: expected a string or an integer or a list of strings or "
            "integers, "
            "got 1.5"
        ],
    ),
    (
        "relay",
        '[[relay.rules]]\nname = "a"\naction = "hold"\n[[relay.rules]]\nname = "a"\naction = "drop"\n',
        ['FILE: relay.rules[1].name: duplicate rule name "a" (first used by relay.rules[0])'],
    ),
    (
        "relay",
        '[[relay.rules]]\nname = "r"\naction = "redact"\nredact = ["card", "(?P<x"]\n',
        [
            'FILE: relay.rules[0].redact[1]: invalid regex in rule "r": missing >, unterminated name at '
            "position 4 "
            "(regex: '(?P<x')"
        ],
    ),
    ("agent", '[agent]\nsource = ""\n', ['FILE: agent.source: expected a non-empty string, got ""']),
    (
        "agent",
        "[agent]\nreconnect_min_s = 60\n",
        ["FILE: agent.reconnect_min_s: expected at most reconnect_max_s (30.0), got 60.0"],
    ),
    (
        "agent",
        '[agent]\ntoken = "a"\ntoken_file = "/nonexistent/t"\n',
        [
            "FILE: agent.token_file: set either token or token_file, not both",
            'FILE: agent.token_file: expected an existing file, got "/nonexistent/t" '
            "(relative to the working directory)",
        ],
    ),
    (
        "agent",
        '[[agent.inputs]]\ntype = "file"\n',
        ['FILE: agent.inputs[0].type: expected one of tail, stdin, files, got "file"'],
    ),
    (
        "agent",
        '[[agent.inputs]]\ntype = "tail"\npaths = "/var/log/*.log"\n',
        ['FILE: agent.inputs[0].paths: expected a non-empty list of strings, got "/var/log/*.log"'],
    ),
    (
        "agent",
        '[[agent.inputs]]\ntype = "stdin"\npaths = ["x"]\n',
        [
            "FILE: agent.inputs[0].paths: unknown key; expected one of detect_level, encoding, "
            "max_line_bytes, multiline_start, multiline_timeout_s"
        ],
    ),
    (
        "agent",
        '[[agent.inputs]]\ntype = "tail"\npaths = ["a"]\nmultiline_start = \'[\'\n',
        [
            "FILE: agent.inputs[0].multiline_start: invalid regex: unterminated character set at position 0 "
            "(regex: '[')"
        ],
    ),
    (
        "agent",
        '[[agent.inputs]]\ntype = "tail"\npaths = ["a"]\nencoding = "utf-32"\n'
        '[[agent.inputs]]\ntype = "stdin"\nencoding = "utf-16-le"\n'
        '[[agent.inputs]]\ntype = "stdin"\nencoding = "klingon"\n',
        [
            "FILE: agent.inputs[0].encoding: encoding 'utf-32' is not supported: its line end is 4 bytes; "
            "have the program write UTF-8 or UTF-16, or convert its files",
            "FILE: agent.inputs[2].encoding: unknown encoding 'klingon': give a codec name Python knows, "
            "such as utf-8, cp949, euc-kr, shift_jis, gb18030, cp1252 or latin-1",
        ],
    ),
    (
        "collector",
        "[collector]\nfts_batch_rows = -5\nname = 1979-05-27\n",
        [
            "FILE: collector.fts_batch_rows: expected an integer >= 1, got -5",
            "FILE: collector.name: expected a non-empty string, got a date/time (1979-05-27)",
        ],
    ),
]


@pytest.mark.parametrize(("role", "text", "expected"), CASES)
def test_error_messages(tmp_path: Path, role: str, text: str, expected: list[str]) -> None:
    path = tmp_path / f"{role}.toml"
    path.write_text(text)
    wanted = [line.replace("FILE", str(path)) for line in expected]
    assert check_file(path, Role(role)).problems == wanted
    with pytest.raises(ConfigError) as info:
        load(role, path)
    assert str(info.value) == wanted[0]
    assert info.value.path == str(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the file: No such file or directory"):
        load("relay", path)


# --- property: whatever a user writes, the result is a config or ConfigErrors, never a crash -------------

_RULE_KEYS = [
    "name",
    "action",
    "level",
    "source",
    "host",
    "path",
    "fields",
    "message",
    "not_message",
    "redact",
    "replacement",
    "nmae",
    "levle",
    "type",
]
_scalars = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["forward", "hold", "drop", "redact", ">=warning", "<=info", "err", "card", "(", "[", "*"]
    ),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True),
    st.booleans(),
    st.dates(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_rules = st.lists(st.dictionaries(st.sampled_from(_RULE_KEYS), _values, max_size=6), max_size=4)
_relay_keys = st.sampled_from(
    ["listen", "collector", "credit", "default_action", "heartbeat_s", "devices", "lisen"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=_rules, extra=st.dictionaries(_relay_keys, _values, max_size=3))
def test_random_rule_configs_load_or_raise_config_error(
    rules: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    cfg, problems = validate_document({"relay": {**extra, "rules": rules}}, Role.RELAY, "relay.toml")
    assert (cfg is None) == bool(problems)
    for p in problems:
        assert isinstance(p, ConfigError)
        assert str(p).startswith("relay.toml: ")
    if cfg is not None:
        assert not isinstance(cfg, str)
        ruleset = RuleSet.from_config(getattr(cfg, "rules", []), getattr(cfg, "default_action"))  # noqa: B009
        ruleset.decide("src", make_record(1, 0, 3, "h", "/p", "password=1 4111111111111111"))


@settings(max_examples=200, deadline=None)
@given(
    level=st.one_of(
        st.text(alphabet=string.ascii_letters + "<>=! 0123456789", max_size=10), st.lists(st.text(max_size=8))
    ),
    regex=st.text(alphabet=string.printable, max_size=15),
)
def test_random_levels_and_regexes(level: str | list[str], regex: str) -> None:
    cfg = RuleConfig(name="r", action=Action.REDACT, level=level, message=regex, redact=[regex])
    try:
        RuleSet.from_config([cfg], path_for_errors="relay.toml")
    except ConfigError as exc:
        assert exc.key is not None and exc.key.startswith("relay.rules[0].")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_random_toml_text_never_crashes(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "relay.toml"
    path.write_text(text, encoding="utf-8")
    report = check_file(path, Role.RELAY)
    assert report.ok or all(p.startswith(str(path)) for p in report.problems)


HINT = (
    "a Windows path in double quotes, where \\n, \\t… are escapes? Write it in single quotes "
    "('C:\\logs\\app.log'), with forward slashes, or with each backslash doubled"
)


def test_a_windows_path_in_double_quotes_is_explained(tmp_path: Path) -> None:
    """In TOML's double quotes a backslash starts an escape: "C:\\new\\tmp" is valid and names no file (a
    newline and a tab), "C:\\logferry" is no TOML at all. Both say what to write instead; single quotes,
    forward slashes and doubled backslashes pass."""
    agent = tmp_path / "agent.toml"
    agent.write_text(
        '[agent]\ndata_dir = "C:\\new\\tmp"\n[[agent.inputs]]\ntype = "tail"\n'
        'paths = [\'D:\\fine\\*.log\', "E:/also/fine.log", "F:\\\\doubled\\\\x.log", "G:\\tabbed.log"]\n'
    )
    assert check_file(agent, Role.AGENT).problems == [
        f"{agent}: agent.data_dir: \"C:\\new\\tmp\" holds a control character ('\\n'): {HINT}",
        f"{agent}: agent.inputs[0].paths[3]: \"G:\\tabbed.log\" holds a control character ('\\t'): {HINT}",
    ]
    relay = tmp_path / "relay.toml"
    relay.write_text('[relay]\ndata_dir = "C:\\logferry"\n')
    assert check_file(relay, Role.RELAY).problems == [
        f"{relay}: line 2, column 17: invalid TOML: Unescaped '\\' in a string: write a Windows path in "
        "single quotes ('C:\\logs\\app.log'), with forward slashes, or with each backslash doubled"
    ]
