"""Progress a person can trust: on a terminal a tqdm bar, otherwise (a log file, CI, ``nohup``) one plain line at a
steady interval with the same fields, so a long cell is never silent for minutes.

``Progress`` reports one cell's training: step, loss, validation accuracy, steps/s and an ETA that includes the
evaluations still to come (the trainer passes its estimate of their time). ``ByteProgress`` reports a download.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

LOG_EVERY = 30.0  # seconds between plain progress lines when the stream is not a terminal


def clock(seconds: float) -> str:
    """``1h02m``, ``4m05s``, ``12s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _tqdm(stream: TextIO, **kwargs: Any) -> Any:
    from tqdm import tqdm

    return tqdm(file=stream, dynamic_ncols=True, leave=True, **kwargs)


class Progress:
    """One cell's training progress. ``enabled``: None = a bar on a terminal, plain lines every ``interval`` seconds
    otherwise; True = a bar even when the stream is not a terminal; False = nothing. ``FPT_BENCH_PROGRESS=lines``
    makes it plain lines whatever the stream (the local executor's worker processes: bars from several processes
    on one terminal would overwrite each other)."""

    def __init__(self, label: str = "", stream: TextIO | None = None, enabled: bool | None = None,
                 interval: float = LOG_EVERY) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.enabled = enabled is not False
        self.bar_mode = (bool(enabled) or (enabled is None and self.stream.isatty())) and \
            os.environ.get("FPT_BENCH_PROGRESS") != "lines"
        self.interval = interval
        self.total = self._done0 = 0
        self._t0 = self._last_line = 0.0
        self._bar: Any = None
        self.last: dict[str, Any] = {}

    def start(self, total: int, done: int = 0) -> None:
        self.total, self._done0, self._t0 = total, done, time.perf_counter()
        self._last_line = self._t0
        if self.enabled and self.bar_mode:
            self._bar = _tqdm(self.stream, total=total, initial=done, desc=self.label, unit="step",
                              bar_format="{desc} {bar} {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")

    def update(self, done: int, loss: float | None = None, val: float | None = None,
               eval_seconds_left: float = 0.0) -> None:
        """``eval_seconds_left``: the trainer's estimate of the evaluation time still to come."""
        now = time.perf_counter()
        rate = (done - self._done0) / max(now - self._t0, 1e-9)
        eta = (self.total - done) / rate + eval_seconds_left if rate > 0 else None
        self.last = {"step": done, "loss": loss, "val": val, "steps_per_second": rate, "eta": eta}
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            postfix = {"loss": f"{loss:.4f}" if loss is not None else None,
                       "val": f"{val:.3f}" if val is not None else None,
                       "eta": clock(eta) if eta is not None else None}
            self._bar.set_postfix({k: v for k, v in postfix.items() if v is not None}, refresh=False)
            return
        if now - self._last_line >= self.interval or done >= self.total:
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """The plain progress line: label, step, loss, val, steps/s, ETA (including evaluation)."""
        s = self.last
        parts = [f"{self.label}: step {s['step']}/{self.total}"]
        if s.get("loss") is not None:
            parts.append(f"loss {s['loss']:.4f}")
        if s.get("val") is not None:
            parts.append(f"val {s['val']:.3f}")
        parts.append(f"{s['steps_per_second']:.2f} steps/s")
        if s.get("eta") is not None:
            parts.append(f"ETA {clock(s['eta'])} (with evaluation)")
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ByteProgress:
    """A download: a tqdm byte bar on a terminal; otherwise a line at the start, every ``interval`` seconds and at
    the end."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None,
                 interval: float = LOG_EVERY) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.interval = interval
        self._t0 = self._last = time.perf_counter()
        self._bar = None
        if self.stream.isatty():
            self._bar = _tqdm(self.stream, total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1000)
        else:
            size = f" ({human_bytes(total)})" if total else ""
            print(f"downloading {label}{size}", file=self.stream, flush=True)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            of = f" of {human_bytes(self.total)}" if self.total else ""
            print(f"{self.label}: {human_bytes(self.done)}{of}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elapsed = time.perf_counter() - self._t0
        print(f"{self.label}: {human_bytes(self.done)} in {elapsed:.1f}s", file=self.stream, flush=True)


def human_bytes(n: float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
