"""The ``logferry certs init|issue`` command line: arguments, and printing what was written.

The work is done by :mod:`logferry.certs`, imported only when the command runs: ``cryptography`` takes
~0.1 s to import and no other command needs it.

This module must never generate or write a key itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

LEAF_DAYS = 825  # logferry.certs.LEAF_DAYS, repeated so --help does not import cryptography


def add_certs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``logferry certs init|issue``."""
    certs = sub.add_parser("certs", help="make a private CA and TLS certificates for a site (docs/TLS.md)")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True)
    init = certs_sub.add_parser("init", help="create the site's CA: DIR/ca.key and DIR/ca.crt")
    init.add_argument("--dir", type=Path, required=True, help="directory of the CA and certificates")
    init.add_argument("--site", required=True, help="site name, written into every certificate")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    iss = certs_sub.add_parser("issue", help="issue a server (default) or client certificate from the CA")
    iss.add_argument("--dir", type=Path, required=True, help="directory holding ca.key and ca.crt")
    iss.add_argument("--name", required=True, help="server name, or the agent's source / relay's name")
    iss.add_argument("--host", action="append", default=[], metavar="HOST",
                     help="host name or IP address clients dial (repeatable; for servers)")  # fmt: skip
    iss.add_argument("--client", action="store_true", help="a client certificate for mutual TLS")
    iss.add_argument("--days", type=int, default=LEAF_DAYS, help=f"validity (default {LEAF_DAYS})")
    iss.add_argument("--force", action="store_true", help="replace existing files")


def run_certs(args: argparse.Namespace) -> int:
    """Run ``logferry certs ...`` and print what was written and the config lines to use."""
    from logferry.certs import init_ca, issue

    if args.certs_command == "init":
        written = init_ca(args.dir.resolve(), args.site, force=args.force)
    else:
        written = issue(args.dir.resolve(), args.name, list(args.host), client=args.client, days=args.days,
                        force=args.force)  # fmt: skip
    for path, what in written.files:
        print(f"wrote {path}: {what}")
    print("\nconfig lines:")
    for line in written.config:
        print(f"  {line}")
    return 0
