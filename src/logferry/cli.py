"""The ``logferry`` command: run a role, write or check a config, run the demo.

Options given on the command line override the config file (``--data`` sets ``data_dir`` and so on); every
error names the file or option that is wrong and says what is expected. Exit status: 0 ok, 1 runtime error,
2 bad usage or configuration, 130 forced stop.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from logferry import __version__
from logferry.cli_admin import ADMIN_COMMANDS, add_admin_parsers, run_admin
from logferry.cli_certs import add_certs_parser, run_certs
from logferry.cli_users import add_users_parser, run_users
from logferry.config import AgentConfig, StdinInput, TailInput, check_file, example_text, load
from logferry.config.schema import Role
from logferry.errors import ConfigError, LogferryError
from logferry.lifecycle import StopSignal, run_role, setup_logging, spare_full_collections

log = logging.getLogger("logferry")

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # as a process killed by SIGPIPE, like head's other writers


def _role_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], role: Role, help_text: str
) -> None:
    p = sub.add_parser(role.value, help=help_text, description=help_text)
    p.add_argument("--config", "-c", type=Path, help=f"TOML file with a [{role.value}] table")
    p.add_argument("--data", help="data directory (overrides data_dir)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any option")
    if role is Role.AGENT:
        p.add_argument("--relay", help="relay address HOST:PORT")
        p.add_argument("--source", help="source name of this device")
        p.add_argument("--token", help="token shared with the relay")
        p.add_argument(
            "--tail", action="append", default=[], metavar="GLOB", help="follow files (repeatable)"
        )
        p.add_argument(
            "--stdin", action="store_true", help="read records from stdin; exit once all are acked"
        )
    else:
        p.add_argument("--listen", help="logferry/1 listen address HOST:PORT (port 0: OS picks)")
        p.add_argument("--api-listen", help='REST API address HOST:PORT (port 0: OS picks; "": off)')
    if role is Role.RELAY:
        p.add_argument("--collector", help="collector address HOST:PORT")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logferry",
        description="Carry logs from devices through a relay to a collector, and prove nothing went missing.",
    )
    parser.add_argument("--version", action="version", version=f"logferry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _role_parser(sub, Role.AGENT, "run the device-side agent: tail files or stdin, spool, ship to the relay")
    _role_parser(
        sub, Role.RELAY, "run the relay (Server1): rules, journal, held store, forward to the collector"
    )
    _role_parser(sub, Role.COLLECTOR, "run the collector (Server2): store, dedupe, index for search")
    init = sub.add_parser("init", help="print a commented example config for a role")
    init.add_argument("role", choices=[r.value for r in Role])
    config = sub.add_parser("config", help="work with config files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file without starting anything")
    check.add_argument("file", type=Path)
    demo = sub.add_parser(
        "demo", help="run a collector, a relay and three simulated devices, with live progress"
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.add_argument(
        "--data", type=Path, default=None, help="keep the demo's data here (default: a temp dir)"
    )
    demo.add_argument("--rate", type=int, default=200, help="lines per second per device")
    add_admin_parsers(sub)  # status, held, missing, reconcile, audit: through a running role's REST API
    add_certs_parser(sub)  # certs init|issue: a private CA and TLS certificates for a site
    add_users_parser(sub)  # users hash|token|add: what a [[relay.users]] table needs
    return parser


def _overrides(args: argparse.Namespace, role: Role) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}", path="--set")
        out[key.strip()] = value
    for flag, key in (("data", "data_dir"), ("listen", "listen"), ("collector", "collector"),
                      ("relay", "relay"), ("source", "source"), ("token", "token"),
                      ("api_listen", "api_listen")):  # fmt: skip
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    return out


def _run_role(args: argparse.Namespace) -> int:
    role = Role(args.command)
    setup_logging(args.log_level)
    spare_full_collections()
    cfg = load(role, args.config, _overrides(args, role))
    if isinstance(cfg, AgentConfig):
        from logferry.roles.agent import Agent

        extra: list[TailInput | StdinInput] = []
        if args.tail:
            extra.append(TailInput(paths=list(args.tail)))
        if args.stdin:
            extra.append(StdinInput())
        if extra:
            import msgspec

            cfg = msgspec.structs.replace(cfg, inputs=[*cfg.inputs, *extra])
        agent = Agent(cfg, exit_when_done=bool(args.stdin))

        async def main_agent(stop: StopSignal) -> int:
            return await agent.run(stop)

        return run_role(main_agent)
    if role is Role.RELAY:
        from logferry.config import RelayConfig
        from logferry.roles.relay import Relay

        assert isinstance(cfg, RelayConfig)
        relay = Relay(cfg)

        async def main_relay(stop: StopSignal) -> int:
            return await relay.run(stop)

        return run_role(main_relay)
    from logferry.config import CollectorConfig
    from logferry.roles.collector import Collector

    assert isinstance(cfg, CollectorConfig)
    collector = Collector(cfg)

    async def main_collector(stop: StopSignal) -> int:
        return await collector.run(stop)

    return run_role(main_collector)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            sys.stdout.write(example_text(args.role))
            return 0
        if args.command == "config":
            report = check_file(args.file)
            for line in report.lines():
                print(line, file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else EXIT_USAGE
        if args.command == "certs":
            return run_certs(args)
        if args.command == "users":
            return run_users(args)
        if args.command in ADMIN_COMMANDS:
            return run_admin(args)
        if args.command == "demo":
            from logferry.demo.run import run_demo

            return run_demo(duration_s=args.duration, data=args.data, rate=args.rate)
        return _run_role(args)
    except ConfigError as exc:
        print(f"logferry: configuration error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"logferry: configuration error: {note}", file=sys.stderr)
        return EXIT_USAGE
    except LogferryError as exc:
        print(f"logferry: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`logferry held list | head`): stop quietly, as the shell's tools do. Python
        # would otherwise print a traceback, and again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
