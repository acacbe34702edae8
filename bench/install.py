"""Idempotent installation of the peers: rsyslog + rsyslog-relp from apt, and syslog-ng's loggen unpacked
from its .deb (syslog-ng-core conflicts with rsyslog, so it is never installed, only extracted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from common import OUT_DIR, BenchError, log

APT_PACKAGES = ["rsyslog", "rsyslog-relp"]
# loggen's shared-library dependencies (from syslog-ng-core's Depends); those missing from this Debian
# release are skipped with a note.
LOGGEN_LIB_PACKAGES = [
    "libivykis0",
    "libnet1",
    "libjson-c5",
    "libwrap0",
    "libglib2.0-0",
    "libcap2",
    "libpcre3",
]
CACHE_DIR = OUT_DIR / "cache"
SYSLOG_NG_ROOT = CACHE_DIR / "syslog-ng-core"
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


@dataclass(frozen=True)
class Tools:
    rsyslogd: str
    loggen: str
    loggen_env: dict[str, str]


def _run(argv: list[str], *, cwd: Path | None = None, timeout: float = 900) -> str:
    log("$ " + " ".join(argv))
    res = subprocess.run(
        argv, cwd=cwd, env=APT_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if res.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return res.stdout


def _installed(pkg: str) -> bool:
    res = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False
    )
    return res.returncode == 0 and res.stdout.strip() == "install ok installed"


def _known(pkg: str) -> bool:
    """apt knows a candidate version of ``pkg`` (so installing it can work)."""
    res = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True, check=False)
    return "Candidate:" in res.stdout and "Candidate: (none)" not in res.stdout


class _Apt:
    def __init__(self) -> None:
        self.updated = False

    def ensure_lists(self, pkgs: list[str]) -> None:
        """``apt-get update`` only if the package lists are missing or do not know ``pkgs``."""
        if self.updated:
            return
        lists = Path("/var/lib/apt/lists")
        has_lists = lists.is_dir() and any(
            p.name.endswith(("Packages", ".lz4", ".gz", ".xz")) for p in lists.iterdir()
        )
        if has_lists and all(_known(p) for p in pkgs):
            return
        _run(["apt-get", "update", "-qq"])
        self.updated = True

    def install(self, pkgs: list[str]) -> None:
        missing = [p for p in pkgs if not _installed(p)]
        if not missing:
            return
        self.ensure_lists(missing)
        available = [p for p in missing if _known(p)]
        for p in sorted(set(missing) - set(available)):
            log(f"package {p} is not available on this Debian release: skipped")
        if available:
            _run(["apt-get", "install", "-y", "-qq", *available])


def _system_rsyslogd_pids() -> list[int]:
    """PIDs of rsyslogd processes that are not ours (e.g. a system daemon started by the package)."""
    res = subprocess.run(["pgrep", "-x", "rsyslogd"], capture_output=True, text=True, check=False)
    return [int(x) for x in res.stdout.split()]


def _unpack_loggen(apt: _Apt) -> Path:
    loggen = SYSLOG_NG_ROOT / "usr" / "bin" / "loggen"
    if loggen.is_file():
        return loggen
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    debs = sorted(CACHE_DIR.glob("syslog-ng-core_*.deb"))
    if not debs:
        apt.ensure_lists(["syslog-ng-core"])
        _run(["apt-get", "download", "syslog-ng-core"], cwd=CACHE_DIR)
        debs = sorted(CACHE_DIR.glob("syslog-ng-core_*.deb"))
    if not debs:
        raise BenchError("apt-get download syslog-ng-core produced no .deb")
    tmp = SYSLOG_NG_ROOT.with_name("syslog-ng-core.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["dpkg", "-x", str(debs[-1]), str(tmp)])
    shutil.rmtree(SYSLOG_NG_ROOT, ignore_errors=True)
    tmp.rename(SYSLOG_NG_ROOT)
    if not loggen.is_file():
        raise BenchError(f"no usr/bin/loggen in {debs[-1].name}")
    return loggen


def _loggen_env() -> dict[str, str]:
    """loggen finds its libraries via LD_LIBRARY_PATH and its plugins via SYSLOGNG_PREFIX."""
    env = dict(os.environ)
    paths = [str(SYSLOG_NG_ROOT / "usr" / "lib" / "syslog-ng")]
    if env.get("LD_LIBRARY_PATH"):
        paths.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(paths)
    env["SYSLOGNG_PREFIX"] = str(SYSLOG_NG_ROOT / "usr")
    return env


def ensure_tools(skip_install: bool) -> Tools:
    apt = _Apt()
    before = set(_system_rsyslogd_pids())
    if not skip_install:
        t0 = time.monotonic()
        apt.install(APT_PACKAGES + LOGGEN_LIB_PACKAGES)
        _unpack_loggen(apt)
        log(f"peers installed/verified in {time.monotonic() - t0:.1f}s")
    started = set(_system_rsyslogd_pids()) - before
    if started:
        # policy-rc.d should have prevented this; we do not kill system services we did not start.
        log(f"WARNING: installing rsyslog started a system rsyslogd (pids {sorted(started)}); left alone")
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    loggen = SYSLOG_NG_ROOT / "usr" / "bin" / "loggen"
    if not Path(rsyslogd).is_file():
        raise BenchError("rsyslogd not found (run without --skip-install)")
    if not loggen.is_file():
        raise BenchError(f"loggen not found at {loggen} (run without --skip-install)")
    env = _loggen_env()
    res = subprocess.run([str(loggen), "--help"], env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BenchError(f"loggen does not run: {(res.stderr or res.stdout).strip()[-500:]}")
    return Tools(rsyslogd=rsyslogd, loggen=str(loggen), loggen_env=env)


def foreign_rsyslogd() -> list[int]:
    return _system_rsyslogd_pids()
