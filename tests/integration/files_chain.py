"""A chain for whole-file tests: collector, relay (a rule holds `*.hold` files), an agent watching a folder.

Everything runs as real processes on OS-picked ports; the checks read the stores read-only and the
collector's content directory, as an operator's tools would.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tests.integration.procs import Proc, Procs, query

SOURCE = "dev-f"
ITEMS = SOURCE + "/files"
ANY = "127.0.0.1:0"
RELAY_RULES = """
[[relay.rules]]
name = "hold-marked"
action = "hold"
items = "files"
file_name = "*.hold"
"""


@dataclass
class FilesChain:
    procs: Procs
    root: Path
    collector: Proc
    relay: Proc
    folder: Path

    @property
    def files_db(self) -> Path:
        return self.root / "collector" / "files.db"

    def stored(self) -> dict[str, str]:
        """path -> sha256 hex of every manifest the collector keeps."""
        rows = query(self.files_db, "SELECT path, sha256 FROM files WHERE source = ?", ITEMS)
        return {str(p): bytes(h).hex() for p, h in rows}

    def content_path(self, sha_hex: str) -> Path:
        return self.root / "collector" / "files" / sha_hex[:2] / sha_hex

    def content_files(self) -> list[Path]:
        base = self.root / "collector" / "files"
        return [p for p in base.glob("??/*") if p.is_file()]

    def relay_content(self) -> set[str]:
        """sha256 hex of every content the relay keeps: files, and rows of its small-content table."""
        base = self.root / "relay" / "files"
        rows = query(base / "small.sqlite", "SELECT sha256 FROM content")
        return {p.name for p in base.glob("??/*") if p.is_file()} | {bytes(h).hex() for (h,) in rows}

    def start_agent(self, *, chunk_bytes: int = 1 << 20, stable_s: float = 0.3, extra: str = "") -> Proc:
        """The agent watching ``folder``; ``extra``: more TOML lines for its files input."""
        config = self.root / "agent.toml"
        config.write_text(
            f'[agent]\nsource = "{SOURCE}"\nrelay = "{self.relay.address()}"\n'
            f'data_dir = "{self.root / "agent"}"\n\n[[agent.inputs]]\ntype = "files"\n'
            f'paths = ["{self.folder}"]\nstable_s = {stable_s}\nchunk_bytes = {chunk_bytes}\n{extra}\n',
            encoding="utf-8",
        )
        return self.procs.start("agent", "--config", str(config))


def start_files_chain(
    procs: Procs,
    root: Path,
    relay_extra: str = "",
    relay_api: bool = True,
    collector_args: tuple[str, ...] = (),
) -> FilesChain:
    """Collector and relay; ``relay_api=False`` starts the relay without its API, so a restart is READY as
    soon as it accepts agents (a test that cuts transfers must see them still running)."""
    collector = procs.start(
        "collector", "--data", str(root / "collector"), "--listen", ANY, "--api-listen", ANY, *collector_args
    )
    collector.args[collector.args.index("--listen") + 1] = collector.address()  # the relay's target, kept
    config = root / "relay.toml"
    config.write_text(f"[relay]\nheartbeat_s = 1\n{relay_extra}\n{RELAY_RULES}", encoding="utf-8")
    relay = procs.start(
        "relay", "--config", str(config), "--data", str(root / "relay"), "--listen", ANY,
        "--api-listen", ANY if relay_api else "", "--collector", collector.address(),
    )  # fmt: skip
    relay.args[relay.args.index("--listen") + 1] = relay.address()  # restarts keep the agents' port
    folder = root / "outgoing"
    folder.mkdir()
    return FilesChain(procs, root, collector, relay, folder)


def write_file(path: Path, size: int, seed: int) -> str:
    """A file of ``size`` pseudo-random bytes (written in pieces); returns its sha256 hex."""
    h = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * 32768  # 1 MiB pattern per seed
    with path.open("wb") as f:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            f.write(piece)
            h.update(piece)
            left -= len(piece)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(1 << 20):
            h.update(piece)
    return h.hexdigest()


def age(path: Path, seconds: float = 60) -> None:
    """Backdate a file's mtime: as if it was renamed into the folder complete."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))
