"""Telling failures apart: out of memory (worth a smaller micro-batch) and a disk error (worth a clear message)
from the bugs that should stay tracebacks."""

from __future__ import annotations

import torch


def is_out_of_memory(exc: BaseException) -> bool:
    """A device out-of-memory error (``torch.cuda.OutOfMemoryError``, or a RuntimeError that says so: CUDA
    errors raised as RuntimeError, MPS, other backends)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (itself, or what it was raised from or while handling), if any: torch.save,
    for one, reports a failed write as a RuntimeError raised while it closes the file."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
