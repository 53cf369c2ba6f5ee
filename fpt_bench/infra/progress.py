"""A one-line progress display on a terminal (steps/s, loss, validation accuracy); silent otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str = "", stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = 0
        self._t0 = 0.0
        self._done0 = 0
        self._last_draw = 0.0

    def start(self, total: int, done: int = 0) -> None:
        self.total, self._done0, self._t0 = total, done, time.perf_counter()

    def update(self, done: int, loss: float | None = None, val: float | None = None) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw < 0.2 and done < self.total:
            return
        self._last_draw = now
        rate = (done - self._done0) / max(now - self._t0, 1e-9)
        width = 24
        filled = int(width * done / max(self.total, 1))
        parts = [f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}", f"{rate:.2f} it/s"]
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if val is not None:
            parts.append(f"val {val:.3f}")
        self.stream.write("\r" + "  ".join(parts) + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
