"""Load a role's config from a TOML file (or from defaults alone), apply overrides, and check files.

``load()`` is what the daemons call: it returns a typed, validated config or raises one
:class:`~logferry.errors.ConfigError` (further problems attached as notes). ``check_file()`` is what
``logferry config check`` prints: every problem, or a one-line summary. ``with_overrides()`` applies
``--set relay.listen=0.0.0.0:5170``-style flags through the same validation as the file.

This module must never start anything, open sockets or create directories; reading the config file, the
packaged examples and token files is its only I/O.
"""

from __future__ import annotations

import difflib
import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from logferry.config.address import parse_address
from logferry.config.schema import (
    AgentConfig,
    AnyConfig,
    CollectorConfig,
    RelayConfig,
    Role,
)
from logferry.config.validate import WINDOWS_QUOTING, validate_document
from logferry.errors import ConfigError

_TOML_POS = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")
OVERRIDES_ORIGIN = "command line"


def _raise(problems: list[ConfigError]) -> None:
    first = problems[0]
    for other in problems[1:]:
        first.add_note(str(other))
    if len(problems) > 1:
        first.add_note(f"({len(problems)} problems; `logferry config check FILE` lists them all)")
    raise first


def read_document(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the line and column."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.match(str(exc))
        if m is None:
            raise ConfigError(f"invalid TOML: {exc}", path=str(path)) from None
        where = f"line {m['line']}, column {m['col']}"
        what = m["what"]
        if "Unescaped '\\'" in what:
            # Most often a Windows path in double quotes, where a backslash starts an escape.
            what += f": write a Windows path {WINDOWS_QUOTING}"
        raise ConfigError(f"{where}: invalid TOML: {what}", path=str(path)) from None


def load(
    role: Role | str, path: Path | None = None, overrides: Mapping[str, object] | None = None
) -> AnyConfig:
    """The config of ``role`` from ``path`` (or defaults when None), with ``overrides`` applied last."""
    role = Role(role) if isinstance(role, str) else role
    raw = read_document(path) if path is not None else {}
    cfg, problems = validate_document(raw, role, str(path) if path is not None else None)
    if problems:
        _raise(problems)
    assert cfg is not None
    return _override(cfg, overrides) if overrides else cfg


def load_agent(path: Path | None = None, overrides: Mapping[str, object] | None = None) -> AgentConfig:
    cfg = load(Role.AGENT, path, overrides)
    assert isinstance(cfg, AgentConfig)
    return cfg


def load_relay(path: Path | None = None, overrides: Mapping[str, object] | None = None) -> RelayConfig:
    cfg = load(Role.RELAY, path, overrides)
    assert isinstance(cfg, RelayConfig)
    return cfg


def load_collector(
    path: Path | None = None, overrides: Mapping[str, object] | None = None
) -> CollectorConfig:
    cfg = load(Role.COLLECTOR, path, overrides)
    assert isinstance(cfg, CollectorConfig)
    return cfg


def role_of(config: AnyConfig) -> Role:
    if isinstance(config, AgentConfig):
        return Role.AGENT
    return Role.RELAY if isinstance(config, RelayConfig) else Role.COLLECTOR


C = TypeVar("C", AgentConfig, RelayConfig, CollectorConfig)


def with_overrides(config: C, overrides: Mapping[str, object], origin: str = OVERRIDES_ORIGIN) -> C:
    """A copy of ``config`` with dotted keys (``relay.listen`` or just ``listen``) set, validated like a file.

    Values may be strings as typed on a command line (``"5"`` for an integer, ``"true"`` for a boolean).
    Keys inside lists (rules, inputs) cannot be overridden; edit the file.
    """
    cfg = _override(config, overrides, origin)
    assert isinstance(cfg, type(config))
    return cfg


def _override(
    config: AnyConfig, overrides: Mapping[str, object], origin: str = OVERRIDES_ORIGIN
) -> AnyConfig:
    role = role_of(config)
    section: dict[str, Any] = msgspec.to_builtins(config)
    for dotted, value in overrides.items():
        parts: list[str] = dotted.split(".")
        if parts[0] == role.value:
            parts = parts[1:]
        full = ".".join([role.value, *parts])
        target = section
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(
                    "cannot set a key inside a list from the command line", path=origin, key=full
                )
            target = nxt
        if not parts or not parts[-1]:
            raise ConfigError("expected a dotted key such as relay.listen", path=origin, key=dotted)
        target[parts[-1]] = value
    cfg, problems = validate_document({role.value: section}, role, origin, strict=False)
    if problems:
        _raise(problems)
    assert cfg is not None
    return cfg


class CheckReport(msgspec.Struct, frozen=True):
    """What ``logferry config check FILE`` prints: problems, or a one-line summary of what was loaded."""

    path: str
    role: Role | None
    problems: list[str]
    summary: str

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return list(self.problems) if self.problems else [self.summary]


def check_file(path: Path, role: Role | None = None) -> CheckReport:
    """Check a config file without starting anything; the role comes from its top-level table if not given."""
    try:
        raw = read_document(path)
    except ConfigError as exc:
        return CheckReport(str(path), role, [str(exc)], "")
    if role is None:
        found = [r for r in Role if r.value in raw]
        if len(found) != 1:
            tables = ", ".join(f"[{r.value}]" for r in Role)
            msg = f"expected exactly one of the tables {tables}, found {len(found)}"
            for name in raw:
                close = difflib.get_close_matches(name, [r.value for r in Role], n=1)
                if close and not found:
                    msg += f" (did you mean [{close[0]}] instead of [{name}]?)"
                    break
            return CheckReport(str(path), None, [str(ConfigError(msg, path=str(path)))], "")
        role = found[0]
    cfg, problems = validate_document(raw, role, str(path))
    if problems or cfg is None:
        return CheckReport(str(path), role, [str(p) for p in problems], "")
    return CheckReport(str(path), role, [], f"{path}: OK: {summarize(cfg)}")


def summarize(cfg: AnyConfig) -> str:
    """One line saying what this config will do."""
    if isinstance(cfg, AgentConfig):
        kinds = ", ".join(i.__struct_config__.tag for i in cfg.inputs) or "no inputs"  # type: ignore[misc]
        return f'agent "{cfg.source}" → relay {cfg.relay}; inputs: {kinds}; durability {cfg.durability.value}'
    if isinstance(cfg, RelayConfig):
        devices = f"{len(cfg.devices)} devices" + (
            ", unknown allowed" if cfg.accepts_unknown_devices() else ""
        )
        return (
            f'relay "{cfg.name}" listens on {cfg.listen} → collector {cfg.collector}; '
            f"{len(cfg.rules)} rules, default {cfg.default_action.value}; {devices}"
        )
    relays = f"{len(cfg.relays)} relays" + (", unknown allowed" if cfg.accepts_unknown_relays() else "")
    return f'collector "{cfg.name}" listens on {cfg.listen}; {relays}; durability {cfg.durability.value}'


def example_text(role: Role | str) -> str:
    """The commented example config ``logferry init ROLE`` writes (packaged as ``examples/ROLE.toml``)."""
    name = Role(role).value if isinstance(role, str) else role.value
    return (importlib.resources.files("logferry") / "examples" / f"{name}.toml").read_text(encoding="utf-8")


def read_token(token: str, token_file: str, key: str) -> str:
    """The token itself, or the stripped first line of ``token_file``; "" when neither is set."""
    if not token_file:
        return token
    try:
        return Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the token file {token_file!r}: {exc.strerror or exc}", key=key
        ) from None


def device_tokens(cfg: RelayConfig) -> dict[str, str]:
    """``devices`` merged with ``devices_file`` (a TOML file of ``source = "token"``; the file wins)."""
    tokens = dict(cfg.devices)
    if cfg.devices_file:
        doc = read_document(Path(cfg.devices_file))
        for source, token in doc.items():
            if not isinstance(token, str):
                raise ConfigError(f'expected source = "token", got {source} = a {type(token).__name__}',
                                  path=cfg.devices_file, key=source)  # fmt: skip
            tokens[source] = token
    return tokens


def listen_address(cfg: RelayConfig | CollectorConfig) -> tuple[str, int]:
    """The (host, port) a server binds; validated at load, so this never fails on a loaded config."""
    return parse_address(cfg.listen)
