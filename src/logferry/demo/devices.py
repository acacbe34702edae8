"""Simulated devices for the demo: realistic log lines at several levels, written to real log files.

Some lines carry what the demo's relay rules act on — payment card numbers (held), passwords (redacted),
debug chatter (dropped) — so every fate shows up in the demo. Each device also drops whole files into its
outgoing folder, which its agent ships whole: a diagnostics bundle (forwarded) and, on the first device, a
cardholder export (held by a rule on the file name). Deterministic for a given seed. Writes only into the
directory it is given.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

_USERS = ("kim", "lee", "park", "choi", "jung", "kang", "yoon", "admin")
_PATHS = ("/api/orders", "/api/users", "/login", "/api/payments", "/static/app.js", "/health")
_CARDS = ("4111111111111111", "5500005555555559", "4012888888881881")


def _line(rng: random.Random, device: str, n: int) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    user = rng.choice(_USERS)
    roll = rng.random()
    if roll < 0.55:
        path = rng.choice(_PATHS)
        ms = rng.randint(2, 900)
        return (
            f"{now} INFO http: {rng.choice(('GET', 'POST'))} {path} 200 {ms}ms user={user} req={device}-{n}"
        )
    if roll < 0.70:
        return f"{now} DEBUG cache: lookup key=session:{user} hit={rng.random() < 0.8} req={device}-{n}"
    if roll < 0.80:
        return f"{now} WARNING db: slow query took {rng.randint(500, 3000)}ms table=orders req={device}-{n}"
    if roll < 0.88:
        code = rng.choice(("ECONNRESET", "ETIMEDOUT", "EPIPE"))
        return f"{now} ERROR upstream: payment gateway failed: {code} req={device}-{n}"
    if roll < 0.94:
        return f"{now} INFO auth: login user={user} password={rng.randbytes(4).hex()} ok req={device}-{n}"
    card, amount = rng.choice(_CARDS), rng.randint(1, 500)
    return f"{now} INFO billing: charge card={card} amount={amount}.00 req={device}-{n}"


HELD_FILE_NAME = "cardholder-export.csv"  # the demo's relay holds files named *export*.csv


@dataclass
class Device:
    """One simulated device appending to its own log file and dropping whole files into ``outgoing``."""

    name: str
    log_path: Path
    seed: int
    written: int = 0
    files: list[Path] = field(default_factory=list)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.outgoing.mkdir(parents=True, exist_ok=True)

    @property
    def outgoing(self) -> Path:
        """The folder the device's agent ships whole files from."""
        return self.log_path.parent / "outgoing"

    def write_files(self) -> None:
        """Drop this device's files, complete, into ``outgoing`` (written aside, then renamed in)."""
        rng = random.Random(self.seed * 7919)
        bundle = rng.randbytes(rng.randint(150_000, 400_000))
        wanted = {f"diagnostics-{self.name}.bin": bundle}
        if self.seed == 1:
            rows = [f"{rng.choice(_CARDS)},{rng.randint(1, 500)}.00,{rng.choice(_USERS)}" for _ in range(200)]
            wanted[HELD_FILE_NAME] = ("card,amount,user\n" + "\n".join(rows) + "\n").encode()
        for name, data in wanted.items():
            final = self.outgoing / name
            temp = self.outgoing.parent / f".{name}.part"  # outside the watched folder until complete
            temp.write_bytes(data)
            temp.replace(final)
            self.files.append(final)

    def write(self, count: int) -> None:
        lines = [_line(self._rng, self.name, self.written + i + 1) for i in range(count)]
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.written += count
