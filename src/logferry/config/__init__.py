"""logferry configuration: one TOML file per role, every option declared once.

Public API::

    load(role, path=None, overrides=None) -> AgentConfig | RelayConfig | CollectorConfig
    load_agent / load_relay / load_collector(path=None, overrides=None)
    with_overrides(config, {"relay.listen": "0.0.0.0:5170"}) -> same config type
    check_file(path, role=None) -> CheckReport          # `logferry config check FILE`
    example_text(role) -> str                           # `logferry init ROLE`
    parse_address("host:port") -> (host, port)
    read_token(token, token_file, key) / device_tokens(relay_config)

Declarations live in ``schema.py`` (options), ``logferry.pipeline.rule_config`` (rules); ``validate.py`` turns
a document into typed config with errors that name the file and key; ``docgen.py`` writes the option tables
of ``docs/CONFIG.md``. Nothing here starts a daemon or touches the network.
"""

from logferry.config.address import parse_address
from logferry.config.loader import (
    CheckReport,
    check_file,
    device_tokens,
    example_text,
    listen_address,
    load,
    load_agent,
    load_collector,
    load_relay,
    read_document,
    read_token,
    role_of,
    summarize,
    with_overrides,
)
from logferry.config.schema import (
    AgentConfig,
    AnyConfig,
    CollectorConfig,
    Compression,
    Durability,
    FilesInput,
    RelayConfig,
    Role,
    StdinInput,
    TailInput,
)
from logferry.inputs.tail_config import ReadFrom
from logferry.pipeline.rule_config import Action, RuleConfig

__all__ = [
    "Action",
    "AgentConfig",
    "AnyConfig",
    "CheckReport",
    "CollectorConfig",
    "Compression",
    "Durability",
    "FilesInput",
    "ReadFrom",
    "RelayConfig",
    "Role",
    "RuleConfig",
    "StdinInput",
    "TailInput",
    "check_file",
    "device_tokens",
    "example_text",
    "listen_address",
    "load",
    "load_agent",
    "load_collector",
    "load_relay",
    "parse_address",
    "read_document",
    "read_token",
    "role_of",
    "summarize",
    "with_overrides",
]
