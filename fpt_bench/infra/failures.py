"""Telling failures apart: out of memory (worth a smaller micro-batch) and a disk error (worth a clear message)
from the bugs that should stay tracebacks."""

from __future__ import annotations

import torch

# what PyTorch's allocators say when an allocation fails: CUDA / MPS / other backends ("out of memory"), the CPU
# allocator on Linux and macOS ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes") and on
# Windows ("DefaultCPUAllocator: not enough memory")
OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """An out-of-memory error on any device: ``torch.cuda.OutOfMemoryError``, Python's ``MemoryError``, or a
    RuntimeError that says so (CUDA errors raised as RuntimeError, MPS, the CPU allocator)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if (oom is not None and isinstance(exc, oom)) or isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(words in str(exc).lower() for words in OOM_WORDS)


def bad_path_message(exc: BaseException) -> str | None:
    """The message for a path the operating system cannot take (a NUL byte in it; ``~user`` for a user this machine
    does not know), else None: Python reports both as a ValueError or RuntimeError from deep inside."""
    text = str(exc)
    if isinstance(exc, ValueError) and "null byte" in text:
        return "a path (an option, a config file's value or an environment variable) contains a NUL byte"
    if isinstance(exc, RuntimeError) and "home directory" in text:
        return f"a path starts with ~USER for a user this machine does not know ({text})"
    return None


def os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (itself, or what it was raised from or while handling), if any: torch.save,
    for one, reports a failed write as a RuntimeError raised while it closes the file."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
