"""Parse ``host:port`` addresses as written in config files and on the command line.

Accepted: ``127.0.0.1:5170``, ``0.0.0.0:0`` (port 0: the OS picks one), ``relay.example.org:5170``,
``[::1]:5170`` (IPv6 in brackets). This module must never resolve names or touch the network: a name that
does not resolve today may resolve when the daemon starts, so only the syntax is checked here.
"""

from __future__ import annotations

import ipaddress
import re

_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9_])?")
EXPECTED = 'expected "host:port" (IPv6 as "[::1]:5170"; port 0-65535, 0 lets the OS pick)'


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``; IPv6 hosts are returned without brackets. Raises ValueError."""
    got = f"{EXPECTED}, got {_quote(text)}"
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(got)
    port = int(port_text)
    if port > 65535:
        raise ValueError(got)
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), port
        except ValueError:
            raise ValueError(got) from None
    if ":" in host:
        raise ValueError(f"{got}: put an IPv6 address in brackets")
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(got)
    return host, port


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
