"""Turn a parsed TOML document into a typed config, collecting every problem with its key path.

msgspec stops at the first error and speaks JSON (``$.relay.rules[2]``); a person editing TOML needs every
problem at once, in their words: ``relay.rules[2].action: expected one of forward, hold, drop, redact, got
"keep"``. So :func:`validate_document` walks the document against the declarations in ``schema.py`` —
unknown keys (with a "did you mean"), missing keys, types, enums, addresses, regexes — then lets msgspec build
the Structs, then runs the cross-field checks (token vs token_file, timeouts, the rules engine).

This module must never read the config file itself (``loader.py`` does) and never raise anything but
:class:`~logferry.errors.ConfigError` for a bad document.
"""

from __future__ import annotations

import datetime
import difflib
import enum
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

import msgspec

from logferry.config.address import parse_address
from logferry.config.schema import CONFIG_TYPES, AgentConfig, AnyConfig, ClientAuth, RelayConfig, Role
from logferry.errors import ConfigError
from logferry.inputs.records import encoding_problem
from logferry.pipeline.redact import compile_regex
from logferry.pipeline.rules import RuleSet
from logferry.users.credentials import password_hash_problem, token_hash_problem, user_problems

_SCALARS = {str: ("a string", "strings"), int: ("an integer", "integers"), float: ("a number", "numbers"),
            bool: ("true or false", "booleans")}  # fmt: skip
# Regex options declared outside this package (the tail input checks them in __post_init__, which would
# only name the whole table); checking them here names the key.
_REGEX_OPTIONS = frozenset({"multiline_start"})
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_AT = re.compile(r" - at `\$(?P<sub>[^`]*)`$")


def show(value: object) -> str:
    """A value as the user wrote it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime.date | datetime.time):
        return f"a date/time ({value.isoformat()})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _unwrap(tp: Any) -> tuple[Any, msgspec.Meta | None]:
    if typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        metas = [m for m in args[1:] if isinstance(m, msgspec.Meta)]
        return args[0], (metas[0] if metas else None)
    return tp, None


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def describe(tp: Any, plural: bool = False) -> str:
    """What a type expects, in words: ``an integer >= 1``, ``a string or a list of strings``."""
    base, meta = _unwrap(tp)
    options = _union_args(base)
    if options is not None:
        words = [describe(o, plural) for o in options if o is not type(None)]
        return " or ".join(dict.fromkeys(words))  # tagged tables all read "a table": say it once
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in base)
    origin, args = typing.get_origin(base), typing.get_args(base)
    kind = (meta.extra or {}).get("kind") if meta is not None else None
    if origin is list:
        text = ("lists of " if plural else "a list of ") + describe(args[0], plural=True)
    elif origin is dict:
        text = ("tables of " if plural else "a table of ") + describe(args[1], plural=True)
    elif isinstance(base, type) and issubclass(base, msgspec.Struct):
        text = "tables" if plural else "a table"
    elif kind == "address":
        text = '"host:port"'
    elif kind == "address?":
        text = '"host:port" or ""'
    elif kind == "regex":
        text = "a regex"
    elif kind == "encoding":
        text = 'a character encoding ("utf-8", "cp949", "latin-1"…)'
    elif kind == "file":
        text = "a file path"
    elif kind == "password_hash":
        text = 'an argon2id hash ("$argon2id$…")'
    elif kind == "token_hash":
        text = '"sha256:<hex>" or ""'
    else:
        text = _SCALARS.get(base, (str(base), str(base)))[1 if plural else 0]
    if meta is not None:
        if meta.ge is not None:
            text += f" >= {meta.ge}"
        if meta.gt is not None:
            text += f" > {meta.gt}"
        if meta.min_length:
            text = text.replace("a string", "a non-empty string").replace("a list", "a non-empty list")
    return text


class Problems:
    """The problems found so far in one document, each a ConfigError naming file and key."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.items: list[ConfigError] = []

    def add(self, key: str | None, message: str) -> None:
        self.items.append(ConfigError(message, path=self.path, key=key))


def _unknown(out: Problems, key: str, name: str, known: list[str]) -> None:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        out.add(key, f'unknown key; did you mean "{close[0]}"?')
    else:
        out.add(key, f"unknown key; expected one of {', '.join(sorted(known))}")


def _check_struct(raw: object, cls: type[msgspec.Struct], key: str, out: Problems, strict: bool) -> None:
    if not isinstance(raw, dict):
        out.add(key, f"expected a table, got {show(raw)}")
        return
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    tag_field = cls.__struct_config__.tag_field
    # In the order the user wrote the keys, so problems read top to bottom like the file.
    for name, value in raw.items():
        if name in fields:
            _check_value(value, fields[name].type, f"{key}.{name}", out, strict)
        elif name != tag_field:
            _unknown(out, f"{key}.{name}", name, list(fields))
    for f in fields.values():
        if f.required and f.name not in raw:
            out.add(f"{key}.{f.name}", f"missing; expected {describe(f.type)}")


def _check_tagged(raw: object, options: tuple[Any, ...], key: str, out: Problems, strict: bool) -> None:
    """One element of a list of tagged tables, such as ``[[agent.inputs]]`` chosen by ``type``."""
    tags = {o.__struct_config__.tag: o for o in options}
    tag_field = options[0].__struct_config__.tag_field
    if not isinstance(raw, dict):
        out.add(key, f"expected a table, got {show(raw)}")
        return
    tag = raw.get(tag_field)
    if tag not in tags:
        got = "nothing" if tag is None else show(tag)
        out.add(f"{key}.{tag_field}", f"expected one of {', '.join(map(str, tags))}, got {got}")
        return
    _check_struct(raw, tags[tag], key, out, strict)


def _check_value(value: object, tp: Any, key: str, out: Problems, strict: bool) -> None:
    base, meta = _unwrap(tp)
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        _check_struct(value, base, key, out, strict)
        return
    if isinstance(base, type) and issubclass(base, enum.Enum):
        if not any(value == m.value for m in base):
            out.add(key, f"expected {describe(base)}, got {show(value)}")
        return
    if typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        options = _union_args(item) or (item,)
        if all(isinstance(o, type) and issubclass(o, msgspec.Struct) for o in options):
            if not isinstance(value, list):
                out.add(key, f"expected {describe(tp)}, got {show(value)}")
                return
            for i, element in enumerate(value):
                if len(options) > 1:
                    _check_tagged(element, options, f"{key}[{i}]", out, strict)
                else:
                    _check_struct(element, options[0], f"{key}[{i}]", out, strict)
            return
    if typing.get_origin(base) is dict and isinstance(value, dict):
        item = typing.get_args(base)[1]
        for name, element in value.items():
            _check_value(element, item, f"{key}.{_toml_key(name)}", out, strict)
        return
    try:
        msgspec.convert(value, tp, strict=strict)
    except msgspec.ValidationError as exc:
        sub = _AT.search(str(exc))
        if sub and sub.group("sub"):
            # Deep inside a table or list: msgspec knows which element; keep its words and its path.
            text = _AT.sub("", str(exc)).replace("`", "")
            out.add(key + sub.group("sub"), text[0].lower() + text[1:])
        else:
            out.add(key, f"expected {describe(tp)}, got {show(value)}")
        return
    kind = (meta.extra or {}).get("kind") if meta is not None else None
    if kind is None and key.rpartition(".")[2] in _REGEX_OPTIONS:
        kind = "regex"
    if isinstance(value, str) and kind is not None:
        _check_kind(value, kind, key, out)


def _toml_key(name: str) -> str:
    """A table key as TOML would need it written: bare if possible, else quoted."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _check_kind(value: str, kind: str, key: str, out: Problems) -> None:
    if kind == "address" or (kind == "address?" and value):
        try:
            parse_address(value)
        except ValueError as exc:
            out.add(key, str(exc))
    elif kind == "encoding":
        problem = encoding_problem(value)
        if problem is not None:
            out.add(key, problem)
    elif kind == "regex" and value:
        compiled = compile_regex(value)
        if isinstance(compiled, str):
            out.add(key, f"invalid regex: {compiled} (regex: {value!r})")
    elif kind in ("password_hash", "token_hash"):  # the messages never repeat a hash
        problem = password_hash_problem(value) if kind == "password_hash" else token_hash_problem(value)
        if problem is not None:
            out.add(key, problem)


def _cross_checks(cfg: AnyConfig, role: Role, out: Problems) -> None:
    """Rules that involve more than one option; run only once every option has the right type."""
    r = role.value
    if not isinstance(cfg, AgentConfig) and cfg.idle_timeout_s <= cfg.heartbeat_s:
        out.add(
            f"{r}.idle_timeout_s",
            f"expected more than heartbeat_s ({cfg.heartbeat_s}), got {cfg.idle_timeout_s}",
        )
    if isinstance(cfg, AgentConfig) and cfg.reconnect_min_s > cfg.reconnect_max_s:
        out.add(f"{r}.reconnect_min_s", f"expected at most reconnect_max_s ({cfg.reconnect_max_s}), "
                f"got {cfg.reconnect_min_s}")  # fmt: skip
    token_file = getattr(cfg, "token_file", "")
    if getattr(cfg, "token", "") and token_file:
        out.add(f"{r}.token_file", "set either token or token_file, not both")
    for name in ("token_file", "devices_file"):
        file = getattr(cfg, name, "")
        if file and not Path(file).is_file():
            out.add(
                f"{r}.{name}",
                f"expected an existing file, got {show(file)} (relative to the working directory)",
            )
    for key, message in tls_problems(cfg):
        out.add(key, message)
    if not isinstance(cfg, AgentConfig):
        for key, message in user_problems(cfg.users, r):
            out.add(key, message)
    if isinstance(cfg, RelayConfig):
        _, problems = RuleSet.compile(cfg.rules, cfg.default_action, out.path, f"{r}.rules")
        out.items.extend(problems)
    for key, value in _paths_of(cfg, r):
        control = next((c for c in value if ord(c) < 32), None)
        if control is not None:
            # "C:\new\tmp" in double quotes is valid TOML: a newline and a tab, never a file anyone has.
            out.add(key, f"{show(value)} holds a control character ({control!r}): {WINDOWS_PATH_HINT}")


WINDOWS_QUOTING = (
    "in single quotes ('C:\\logs\\app.log'), with forward slashes, or with each backslash doubled"
)
WINDOWS_PATH_HINT = (
    f"a Windows path in double quotes, where \\n, \\t… are escapes? Write it {WINDOWS_QUOTING}"
)


def _paths_of(cfg: AnyConfig, r: str) -> list[tuple[str, str]]:
    """Every file or folder path the config names, with its key."""
    found = [(f"{r}.data_dir", cfg.data_dir)]
    found += [(f"{r}.{name}", getattr(cfg, name)) for name in ("token_file", "devices_file", *_FILE_OPTIONS)
              if isinstance(getattr(cfg, name, None), str)]  # fmt: skip
    for i, spec in enumerate(getattr(cfg, "inputs", ())):
        for name in ("paths", "exclude"):
            found += [(f"{r}.inputs[{i}].{name}[{j}]", p) for j, p in enumerate(getattr(spec, name, ()))]
        if isinstance(getattr(spec, "move_to", None), str):
            found.append((f"{r}.inputs[{i}].move_to", spec.move_to))
    return found


_FILE_OPTIONS = frozenset(
    {"tls_ca", "tls_cert", "tls_key", "tls_client_ca", "collector_ca", "collector_cert", "collector_key",
     "syslog_tls_cert", "syslog_tls_key", "syslog_tls_client_ca"}
)  # fmt: skip


def tls_problems(cfg: AnyConfig) -> list[tuple[str, str]]:
    """``(key, message)`` for TLS options that do not fit together or name missing files (none is read:
    ``logferry.tls`` checks their content when it builds the contexts)."""
    if isinstance(cfg, AgentConfig):
        role, pairs, groups = (
            "agent",
            [("tls_cert", "tls_key")],
            [("tls", ("tls_ca", "tls_cert", "tls_server_name"))],
        )
        clients: list[tuple[str, str, str]] = []
    else:
        role, pairs, groups = "collector", [("tls_cert", "tls_key")], []
        clients = [("tls_cert", "tls_client_ca", "tls_client_auth")]
        if isinstance(cfg, RelayConfig):
            role = "relay"
            pairs += [("syslog_tls_cert", "syslog_tls_key"), ("collector_cert", "collector_key")]
            groups = [("collector_tls", ("collector_ca", "collector_cert", "collector_server_name"))]
            clients.append(("syslog_tls_cert", "syslog_tls_client_ca", "syslog_tls_client_auth"))
    out: list[tuple[str, str]] = []
    for cert, key in pairs:
        if bool(getattr(cfg, cert)) != bool(getattr(cfg, key)):
            out.append(
                (f"{role}.{key if getattr(cfg, cert) else cert}", f"set both {cert} and {key}, or neither")
            )
    for switch, options in groups:
        for name in options:
            if getattr(cfg, name) and not getattr(cfg, switch):
                out.append((f"{role}.{name}", f"has no effect while {switch} is false; set {switch} = true"))
    for cert, ca, auth in clients:
        has_cert = bool(getattr(cfg, cert)) or (cert == "syslog_tls_cert" and bool(cfg.tls_cert))
        wants = getattr(cfg, auth) not in (None, ClientAuth.NONE)
        if getattr(cfg, ca) and not has_cert:
            out.append((f"{role}.{ca}", f"client certificates need TLS on this port: set {cert} and its key"))
        elif wants and not getattr(cfg, ca):
            out.append((f"{role}.{auth}", f"needs {ca}, the CA that signs the clients' certificates"))
    for f in msgspec.structs.fields(type(cfg)):
        path = getattr(cfg, f.name)
        if f.name in _FILE_OPTIONS and path and not Path(path).is_file():
            out.append((f"{role}.{f.name}", f"expected an existing PEM file, got {path!r} (relative to the "
                        f"working directory); make one with `logferry certs` (docs/TLS.md)"))  # fmt: skip
    return out


def validate_document(
    raw: dict[str, Any], role: Role, path: str | None, *, strict: bool = True
) -> tuple[AnyConfig | None, list[ConfigError]]:
    """Validate a whole file's document for ``role``; the config is None whenever there are problems."""
    out = Problems(path)
    r = role.value
    for name in raw:
        if name == r:
            continue
        if name in {x.value for x in Role}:
            out.add(name, f"this is {r} configuration, which has no [{name}] table (one file per role)")
        else:
            _unknown(out, name, name, [r])
    section = raw.get(r, {})
    cls = CONFIG_TYPES[role]
    _check_struct(section, cls, r, out, strict)
    if out.items:
        return None, out.items
    try:
        cfg: AnyConfig = msgspec.convert(section, cls, strict=strict)
    except msgspec.ValidationError as exc:  # a case the walk above missed: still name the key
        sub = _AT.search(str(exc))
        out.add(r + (sub.group("sub") if sub else ""), _AT.sub("", str(exc)).replace("`", ""))
        return None, out.items
    _cross_checks(cfg, role, out)
    return (None, out.items) if out.items else (cfg, [])
