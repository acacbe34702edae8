"""Every option of every role, declared once: name (with its unit), type, default, limits and help text.

The TOML loader, command-line overrides, ``logferry config check``, ``logferry init`` and the option tables in
``docs/CONFIG.md`` are all derived from these Structs, so an option cannot exist in one place and not the
others. ``Meta.extra["kind"]`` marks strings that need more than a type check (``address``, ``regex``,
``file``); ``Meta.extra["default_doc"]`` explains a default computed at load time. The tail input's options
are declared by the input itself (``logferry.inputs.tail_config``) and only tagged here.

This module only declares. It must never read files, resolve host names at import time or validate beyond
what msgspec types express (cross-field checks live in ``validate.py``).
"""

from __future__ import annotations

import enum
import socket
from typing import Annotated, Any

import msgspec

from logferry.inputs.tail_config import TailConfig
from logferry.pipeline.rule_config import Action, RuleConfig
from logferry.users.roles import Role as UserRole

MiB = 1024 * 1024


class Role(enum.Enum):
    """The three programs; each has one config file with a top-level table of the same name."""

    AGENT = "agent"
    RELAY = "relay"
    COLLECTOR = "collector"


class Durability(enum.Enum):
    """How hard a store commits. ``full`` survives power loss; ``normal`` survives a crash or kill -9."""

    FULL = "full"
    NORMAL = "normal"


class ResendPolicy(enum.Enum):
    """What the relay does with items reconciliation finds missing at the collector."""

    AUTO = "auto"
    CONFIRM = "confirm"


class ClientAuth(enum.Enum):
    """Whether a TLS server asks its clients for a certificate signed by its ``*_client_ca``."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


class Compression(enum.Enum):
    """How batch bodies are compressed on the way out."""

    NONE = "none"
    ZSTD = "zstd"


def opt(
    description: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    min_length: int | None = None,
    kind: str | None = None,
    default_doc: str | None = None,
) -> msgspec.Meta:
    """The Meta of one option: help text, limits and, for strings that need more, what kind they are."""
    extra: dict[str, Any] = {}
    if kind is not None:
        extra["kind"] = kind
    if default_doc is not None:
        extra["default_doc"] = default_doc
    return msgspec.Meta(description=description, ge=ge, gt=gt, min_length=min_length, extra=extra or None)


def _hostname() -> str:
    return socket.gethostname() or "localhost"


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config table: unknown keys are errors, every option is passed by name."""


class TailInput(TailConfig, tag_field="type", tag="tail", frozen=True, kw_only=True):
    """``[[agent.inputs]] type = "tail"``: follow files through rotation and truncation.

    The options are declared once, by the tail input itself (``logferry.inputs.tail_config.TailConfig``);
    this subclass only adds the ``type`` tag that selects it in the agent's list of inputs.
    """


class StdinInput(_Section, tag_field="type", tag="stdin"):
    """``[[agent.inputs]] type = "stdin"``: read records from standard input until it closes."""

    multiline_start: Annotated[
        str,
        opt(
            "Regex that starts a new record; other lines join the previous one. Empty: one line, one record.",
            kind="regex",
        ),
    ] = ""
    multiline_timeout_s: Annotated[
        float, opt("Seconds to wait for more lines of a multiline record before sending it.", gt=0)
    ] = 1.0
    max_line_bytes: Annotated[
        int, opt("Longest line in bytes; a longer one is cut into flagged parts, nothing is dropped.", ge=64)
    ] = 64 * 1024
    detect_level: Annotated[
        bool, opt("Guess each record's level from words such as ERROR, WARN, INFO in the line.")
    ] = True
    encoding: Annotated[
        str,
        opt(
            "Character encoding of the input, as for tail inputs: `utf-8`, `utf-8-sig`, `utf-16`, "
            "`cp949`, `shift_jis`, `cp1252`, `latin-1`…",
            kind="encoding",
        ),
    ] = "utf-8"


class FilesInput(_Section, tag_field="type", tag="files"):
    """``[[agent.inputs]] type = "files"``: ship each complete file of some folders, whole."""

    paths: Annotated[
        list[str],
        opt("Glob patterns of the folders to watch; `**` matches folders recursively.", min_length=1),
    ]
    pattern: Annotated[str, opt("Glob on file names to ship (e.g. `*.csv`).", min_length=1)] = "*"
    exclude: Annotated[
        list[str], opt("Glob patterns of file names to skip; the default skips hidden and `*.tmp` files.")
    ] = msgspec.field(default_factory=lambda: [".*", "*.tmp"])
    stable_s: Annotated[
        float,
        opt(
            "Seconds a file's size and mtime must stay unchanged before it counts as complete; a file "
            "renamed into the folder (its mtime older than this) counts as complete at once.",
            ge=0,
        ),
    ] = 2.0
    chunk_bytes: Annotated[
        int, opt("Bytes per chunk on the wire (capped below the relay's frame limit).", ge=4096)
    ] = 4 * MiB
    delete_after: Annotated[
        bool, opt("Delete a file once the relay acknowledged it (exclusive with move_to).")
    ] = False
    move_to: Annotated[
        str,
        opt(
            "Folder to move a file into once the relay acknowledged it, beside (never over) one of the same "
            'name moved before: `report.csv`, then `report.1.csv`. "": keep it where it is.'
        ),
    ] = ""
    rescan_s: Annotated[
        float,
        opt("Seconds between full listings of the folders, beside change events (missed events).", gt=0),
    ] = 5.0


Input = TailInput | StdinInput | FilesInput


class AgentConfig(_Section):
    """``[agent]``: the device side. Tails files and ships them to the relay through a durable spool."""

    source: Annotated[
        str,
        opt(
            "Source name: the first half of every item id. Must be unique per device.",
            min_length=1,
            default_doc="the host name",
        ),
    ] = msgspec.field(default_factory=_hostname)
    token: Annotated[str, opt("Token shared with the relay for the HMAC challenge. Empty: none.")] = ""
    token_file: Annotated[
        str, opt("File holding the token (keeps it out of this file). Exclusive with token.", kind="file")
    ] = ""
    data_dir: Annotated[str, opt("Directory of the spool and checkpoints.", min_length=1)] = (
        "./logferry-data/agent"
    )
    relay: Annotated[str, opt("Address of the relay, host:port.", kind="address")] = "127.0.0.1:5170"
    connect_timeout_s: Annotated[float, opt("Seconds to wait for a connection and handshake.", gt=0)] = 10.0
    durability: Annotated[
        Durability, opt("Spool commits: normal survives kill -9, full also survives power loss.")
    ] = Durability.NORMAL
    max_spool_bytes: Annotated[
        int, opt("Bound of the spool on disk; when full, inputs pause (nothing is dropped).", ge=1 * MiB)
    ] = 1024 * MiB
    keep_acked_bytes: Annotated[
        int, opt("Acknowledged records kept in the spool so the relay can ask for them again.", ge=0)
    ] = 64 * MiB
    batch_max_records: Annotated[int, opt("Records per batch at most.", ge=1)] = 1000
    batch_max_bytes: Annotated[
        int, opt("Encoded bytes per batch at most (below the relay's frame limit).", ge=1024)
    ] = 1 * MiB
    batch_max_wait_s: Annotated[float, opt("Seconds a partial batch waits for more records.", ge=0)] = 0.01
    compression: Annotated[
        Compression,
        opt("Batch compression in the spool and toward the relay: zstd (less disk and network) or none."),
    ] = Compression.ZSTD
    reconnect_min_s: Annotated[
        float, opt("First delay before reconnecting; doubles on each failure.", gt=0)
    ] = 0.2
    reconnect_max_s: Annotated[float, opt("Longest delay between reconnection attempts.", gt=0)] = 30.0
    tls: Annotated[
        bool, opt("Speak TLS to the relay (its tls_cert must be set); the relay's certificate is verified.")
    ] = False
    tls_ca: Annotated[
        str,
        opt(
            "PEM file of the CA that signed the relay's certificate. Empty: the system's trust store.",
            kind="file",
        ),
    ] = ""
    tls_cert: Annotated[
        str, opt("PEM client certificate for mutual TLS (its name must be this source).", kind="file")
    ] = ""
    tls_key: Annotated[str, opt("PEM private key of tls_cert.", kind="file")] = ""
    tls_server_name: Annotated[
        str, opt("Name the relay's certificate must carry.", default_doc="the host of relay")
    ] = ""
    inputs: Annotated[list[Input], opt('[[agent.inputs]] tables; type = "tail", "stdin" or "files".')] = []


class UserConfig(_Section):
    """``[[relay.users]]`` / ``[[collector.users]]``: a person who may sign in to the console and use the API.

    Only hashes are kept here: ``logferry users add NAME --role ROLE`` prints a whole table (it asks for the
    password), ``logferry users hash`` one password hash, ``logferry users token`` a new API token and its
    digest.
    """

    name: Annotated[str, opt("Name to sign in with; the audit log records it.", min_length=1)]
    role: Annotated[
        UserRole, opt("viewer (reads only) or operator (may also release, delete, resend, acknowledge).")
    ]
    password_hash: Annotated[
        str,
        opt(
            "argon2id hash of the password (`$argon2id$...`), from `logferry users hash`.",
            kind="password_hash",
        ),
    ]
    api_token_hash: Annotated[
        str,
        opt(
            'Digest (`sha256:...`) of this user\'s own API token, from `logferry users token`. "": none.',
            kind="token_hash",
        ),
    ] = ""


class _ServerSection(_Section):
    """Options shared by the two servers (relay and collector)."""

    credit: Annotated[int, opt("Batches a peer may have in flight before waiting for acks.", ge=1)] = 64
    max_frame_bytes: Annotated[
        int, opt("Largest frame accepted; a peer sending more is disconnected.", ge=64 * 1024)
    ] = 8 * MiB
    heartbeat_s: Annotated[float, opt("Seconds between pings on an idle connection.", gt=0)] = 5.0
    handshake_timeout_s: Annotated[float, opt("Seconds a new peer has to complete Hello.", gt=0)] = 10.0
    idle_timeout_s: Annotated[
        float,
        opt(
            "Seconds a peer may take to complete a frame it started (a peer trickling bytes is cut off); "
            "a silent peer is cut off after 3 missed heartbeats.",
            gt=0,
        ),
    ] = 30.0
    write_timeout_s: Annotated[
        float, opt("Seconds a peer may leave our replies unread before it is disconnected.", gt=0)
    ] = 30.0
    durability: Annotated[
        Durability, opt("Store commits: full survives power loss (ack means durable), normal only kill -9.")
    ] = Durability.FULL
    shutdown_timeout_s: Annotated[float, opt("Seconds to finish in-flight work on shutdown.", ge=0)] = 10.0
    api_token: Annotated[
        str,
        opt(
            "Bearer token of the REST API with an operator's rights, for scripts and the CLI (every route "
            "but /api/health then needs one). Without users it also keeps the console closed. Empty: none."
        ),
    ] = ""
    api_token_file: Annotated[
        str, opt("File holding the API token. Exclusive with api_token.", kind="file")
    ] = ""
    users: Annotated[
        list[UserConfig],
        opt(
            "[[relay.users]] / [[collector.users]] tables: who may sign in to the console and call the API, "
            "each as viewer or operator. With users, every console page needs a sign-in and the API a token."
        ),
    ] = []
    session_idle_s: Annotated[
        float, opt("A console session ends after this many seconds without use (sign in again).", gt=0)
    ] = 1800.0
    session_ttl_s: Annotated[
        float, opt("A console session ends this many seconds after sign-in, however busy.", gt=0)
    ] = 43200.0
    tls_cert: Annotated[
        str,
        opt("PEM certificate (chain) of the logferry/1 port; set with tls_key to turn TLS on.", kind="file"),
    ] = ""
    tls_key: Annotated[str, opt("PEM private key of tls_cert.", kind="file")] = ""
    tls_client_ca: Annotated[
        str, opt("PEM file of the CA that signs clients' certificates (mutual TLS).", kind="file")
    ] = ""
    tls_client_auth: Annotated[
        ClientAuth | None,
        opt(
            "Client certificates on the logferry/1 port: none, optional or required. A certificate's name "
            "must equal the Hello's source; with one, the source's token becomes optional.",
            default_doc="required if tls_client_ca is set, else none",
        ),
    ] = None

    def client_auth(self) -> ClientAuth:
        """The effective tls_client_auth: a configured client CA means client certificates are required."""
        if self.tls_client_auth is not None:
            return self.tls_client_auth
        return ClientAuth.REQUIRED if self.tls_client_ca else ClientAuth.NONE


class RelayConfig(_ServerSection):
    """``[relay]``: Server1. Receives from agents, applies rules, journals, forwards to the collector."""

    name: Annotated[
        str, opt("Name of this relay toward the collector.", min_length=1, default_doc="the host name")
    ] = msgspec.field(default_factory=_hostname)
    data_dir: Annotated[str, opt("Directory of the journal, held store and outbox.", min_length=1)] = (
        "./logferry-data/relay"
    )
    listen: Annotated[str, opt("Address agents connect to, host:port (port 0: any).", kind="address")] = (
        "127.0.0.1:5170"
    )
    collector: Annotated[str, opt("Address of the collector, host:port.", kind="address")] = "127.0.0.1:5171"
    api_listen: Annotated[
        str, opt('REST API and /metrics address, host:port (port 0: any; "": off).', kind="address?")
    ] = "127.0.0.1:8170"
    collector_tls: Annotated[
        bool, opt("Speak TLS to the collector (its tls_cert must be set); its certificate is verified.")
    ] = False
    collector_ca: Annotated[
        str,
        opt(
            "PEM file of the CA that signed the collector's certificate. Empty: the system's trust store.",
            kind="file",
        ),
    ] = ""
    collector_cert: Annotated[
        str,
        opt("PEM client certificate toward the collector (its name must be this relay's name).", kind="file"),
    ] = ""
    collector_key: Annotated[str, opt("PEM private key of collector_cert.", kind="file")] = ""
    collector_server_name: Annotated[
        str, opt("Name the collector's certificate must carry.", default_doc="the host of collector")
    ] = ""
    token: Annotated[str, opt("This relay's token toward the collector. Empty: none.")] = ""
    token_file: Annotated[str, opt("File holding the token. Exclusive with token.", kind="file")] = ""
    devices: Annotated[dict[str, str], opt("Table of device source = token.")] = {}
    devices_file: Annotated[
        str, opt('TOML file of source = "token" lines, merged with devices.', kind="file")
    ] = ""
    allow_unknown_devices: Annotated[
        bool | None,
        opt("Accept devices not listed in devices.", default_doc="true if no devices are listed, else false"),
    ] = None
    syslog_listen: Annotated[
        str,
        opt(
            'Syslog over TCP (RFC 6587 octet counting or LF; RFC 5424/3164), host:port. "": off.',
            kind="address?",
        ),
    ] = "127.0.0.1:5514"
    syslog_tls_listen: Annotated[
        str,
        opt(
            "Syslog over TLS (RFC 5425), host:port; on only with a certificate (syslog_tls_cert or "
            'tls_cert). "": off.',
            kind="address?",
        ),
    ] = "127.0.0.1:6514"
    syslog_tls_cert: Annotated[
        str, opt("PEM certificate of the syslog TLS port.", kind="file", default_doc="tls_cert")
    ] = ""
    syslog_tls_key: Annotated[
        str, opt("PEM private key of syslog_tls_cert.", kind="file", default_doc="tls_key")
    ] = ""
    syslog_tls_client_ca: Annotated[
        str, opt("PEM file of the CA that signs syslog senders' certificates.", kind="file")
    ] = ""
    syslog_tls_client_auth: Annotated[
        ClientAuth | None,
        opt(
            "Client certificates on the syslog TLS port: none, optional or required.",
            default_doc="required if syslog_tls_client_ca is set, else none",
        ),
    ] = None
    syslog_max_message_bytes: Annotated[
        int, opt("Longest syslog message; a longer one is cut and flagged, never dropped.", ge=1024)
    ] = 64 * 1024
    line_listen: Annotated[
        str, opt('The seed client\'s line input (name&&message), host:port. "": off.', kind="address?")
    ] = "127.0.0.1:12345"
    line_max_message_bytes: Annotated[
        int, opt("Longest line-input message; a longer one is cut and flagged, never dropped.", ge=1024)
    ] = 64 * 1024
    line_idle_s: Annotated[
        float,
        opt(
            "A line-input message without a newline ends when the sender pauses this long "
            "(the seed client sends none and waits for the reply).",
            gt=0,
        ),
    ] = 0.05
    line_reply: Annotated[
        str, opt("Reply to each line-input message, after it is journaled; {name} is the sender's name.")
    ] = "어서와! {name}"
    line_invalid_reply: Annotated[
        str, opt("Reply to a line-input message that is not name&&message (it is kept raw, flagged).")
    ] = "invalid request"
    compression: Annotated[Compression, opt("Batch compression toward the collector: none or zstd.")] = (
        Compression.ZSTD
    )
    outbox_keep_bytes: Annotated[
        int, opt("Forwarded and acknowledged records kept for resending after reconciliation.", ge=0)
    ] = 256 * MiB
    file_keep_bytes: Annotated[
        int,
        opt(
            "Content of forwarded files acknowledged by the collector kept for resending after "
            "reconciliation (once over it, the oldest is removed down to 90 % of it; held and unsent "
            "files are always kept).",
            ge=0,
        ),
    ] = 1024 * MiB
    reconcile_interval_s: Annotated[
        float,
        opt("Seconds between reconciliations with the collector; 0: only on demand (API, CLI).", ge=0),
    ] = 60.0
    resend_policy: Annotated[
        ResendPolicy,
        opt(
            "What reconciliation does with items the collector lacks: auto resends them at once, confirm "
            "lists them for an operator to resend or acknowledge."
        ),
    ] = ResendPolicy.CONFIRM
    default_action: Annotated[Action, opt("Action when no rule matches: forward, hold or drop.")] = (
        Action.FORWARD
    )
    rules: Annotated[
        list[RuleConfig], opt("[[relay.rules]] tables, tried in order; the first match wins.")
    ] = []

    def accepts_unknown_devices(self) -> bool:
        """The effective allow_unknown_devices: open when no device is listed, closed once one is."""
        if self.allow_unknown_devices is not None:
            return self.allow_unknown_devices
        return not self.devices and not self.devices_file

    def syslog_client_auth(self) -> ClientAuth:
        """The effective syslog_tls_client_auth: a configured client CA means certificates are required."""
        if self.syslog_tls_client_auth is not None:
            return self.syslog_tls_client_auth
        return ClientAuth.REQUIRED if self.syslog_tls_client_ca else ClientAuth.NONE


class CollectorConfig(_ServerSection):
    """``[collector]``: Server2. Receives from relays, stores, dedupes, indexes and answers reconciliation."""

    name: Annotated[str, opt("Name of this collector.", min_length=1, default_doc="the host name")] = (
        msgspec.field(default_factory=_hostname)
    )
    data_dir: Annotated[str, opt("Directory of the record and file stores.", min_length=1)] = (
        "./logferry-data/collector"
    )
    listen: Annotated[str, opt("Address relays connect to, host:port (port 0: any).", kind="address")] = (
        "127.0.0.1:5171"
    )
    api_listen: Annotated[
        str, opt('REST API and /metrics address, host:port (port 0: any; "": off).', kind="address?")
    ] = "127.0.0.1:8171"
    relays: Annotated[dict[str, str], opt("Table of relay name = token.")] = {}
    allow_unknown_relays: Annotated[
        bool | None,
        opt("Accept relays not listed in relays.", default_doc="true if no relays are listed, else false"),
    ] = None
    fts_batch_rows: Annotated[int, opt("Rows indexed for full-text search per transaction.", ge=1)] = 5000
    max_inbox_bytes: Annotated[
        int,
        opt(
            "Batches received but not yet turned into searchable rows, at most; beyond it relays are "
            "acknowledged only as rows are written (they slow down, nothing is dropped).",
            ge=1 * MiB,
        ),
    ] = 256 * MiB
    max_search_lag_s: Annotated[
        float,
        opt(
            "While relays are sending, turning batches into searchable rows waits (acknowledging comes "
            "first) until a batch has waited this long or the inbox is half full.",
            ge=0,
        ),
    ] = 10.0
    file_rehash_interval_s: Annotated[
        float,
        opt(
            "Re-hash every stored file's content this often (a full scrub: finds damage that kept size and "
            "mtime, which reconciliation then reports); the first one this long after the start; 0: never.",
            ge=0,
        ),
    ] = 86400.0
    analysis_enabled: Annotated[
        bool, opt("Mine message templates and error rates from stored records (the Analysis page).")
    ] = True
    analysis_interval_s: Annotated[
        float,
        opt("Once caught up: how often analysis looks for new records and judges quiet sources.", gt=0),
    ] = 5.0
    analysis_batch_rows: Annotated[int, opt("Records mined per analysis transaction.", ge=1)] = 2000
    analysis_window_s: Annotated[
        int, opt("Width of the error-rate windows per source (record time).", ge=1)
    ] = 60
    analysis_baseline_windows: Annotated[
        int, opt("An error rate is compared with the rate over this many windows before it.", ge=1)
    ] = 30
    analysis_error_rate_factor: Annotated[
        float, opt("Alert when a window's error rate is more than this many times its baseline ...", gt=0)
    ] = 3.0
    analysis_error_rate_min: Annotated[
        float, opt("... and at least this share of the window's records (0-1).", ge=0)
    ] = 0.05
    analysis_min_window_records: Annotated[
        int, opt("Windows (and baselines) with fewer records never alert.", ge=1)
    ] = 20
    analysis_warmup_records: Annotated[
        int, opt("Templates found in the first records mined raise no new-template alert.", ge=0)
    ] = 1000
    analysis_keep_days: Annotated[
        int,
        opt(
            "Keep hourly template counts, error-rate windows and alerts this many days (older rows are "
            "deleted in small batches; templates, their all-time counts and first/last seen stay); "
            "0: forever.",
            ge=0,
        ),
    ] = 30
    drain_similarity: Annotated[
        float, opt("Drain: how similar (0-1) a message must be to a template to join it.", ge=0)
    ] = 0.4
    drain_depth: Annotated[int, opt("Drain: depth of the template tree (at least 3).", ge=3)] = 4
    drain_max_children: Annotated[int, opt("Drain: children per tree node at most.", ge=2)] = 100
    drain_max_clusters: Annotated[
        int, opt("Drain: templates kept in memory at most (least recently used go first).", ge=1)
    ] = 10_000

    def accepts_unknown_relays(self) -> bool:
        """The effective allow_unknown_relays: open when no relay is listed, closed once one is."""
        if self.allow_unknown_relays is not None:
            return self.allow_unknown_relays
        return not self.relays


AnyConfig = AgentConfig | RelayConfig | CollectorConfig

CONFIG_TYPES: dict[Role, type[AgentConfig] | type[RelayConfig] | type[CollectorConfig]] = {
    Role.AGENT: AgentConfig,
    Role.RELAY: RelayConfig,
    Role.COLLECTOR: CollectorConfig,
}
