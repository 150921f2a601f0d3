"""A dependency-free progress bar on stderr for long runs (silent when stderr is not a terminal
unless forced, so logs and CI output stay clean)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TextIO, TypeVar

__all__ = ["Progress"]

T = TypeVar("T")


class Progress:
    """``with Progress(total, "label") as bar: bar.update(n)``."""

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: TextIO | None = None,
        force: bool = False,
        width: int = 30,
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or self.stream.isatty()
        self.width = width
        self.done = 0
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        fill = int(frac * self.width)
        rate = self.done / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "#" * fill + "-" * (self.width - fill)
        self.stream.write(
            f"\r{self.label} [{bar}] {frac:6.1%} {self.done:,}/{self.total:,} "
            f"{rate:,.0f}/s eta {eta:5.1f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def wrap_blocks(
        cls, blocks: Iterator[T], total: int, label: str, force: bool = False
    ) -> Iterator[T]:
        """Yield ``blocks`` (query blocks with ``arrival_s``) while advancing a bar."""
        with cls(total, label, force=force) as bar:
            for blk in blocks:
                yield blk
                bar.update(len(blk.arrival_s))  # type: ignore[attr-defined]
