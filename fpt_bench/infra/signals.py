"""Stopping on a signal the way Ctrl-C stops: SIGTERM (a cluster's scheduler, ``kill``, systemd) and SIGHUP (a
closed terminal or ssh session) raise :class:`Stopped`, a ``KeyboardInterrupt``, in the main thread. So every
path that Ctrl-C unwinds runs for them too: a cell's lock is released (``run_claimed``'s ``finally``), a half
written temporary file is removed (``atomic_write``), the checkpoint stays for the rerun, a staging folder is
removed, and the command line says what was kept and exits with 128 + the signal's number (130 for Ctrl-C, 143
for SIGTERM, 129 for SIGHUP), without a traceback.

A signal that is ignored when fpt-bench starts stays ignored (``nohup`` ignores SIGHUP on purpose).

Worker processes (``--workers N``) get :func:`worker_handlers`: a signal stops the cell the worker is running the
same way; a worker waiting for its next cell just takes no more cells (the main process ends the pool), so no
worker prints a traceback, and a second signal while the first one unwinds is not allowed to break the cleanup.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


class Stopped(KeyboardInterrupt):
    """A stop signal, raised where the main thread was (``signum``: which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal's number: what a shell reports for a process a signal ended."""
    return 128 + (exc.signum if isinstance(exc, Stopped) else signal.SIGINT)


def interrupted_message(exc: KeyboardInterrupt) -> str:
    how = f"stopped by {signal_name(exc.signum)}" if isinstance(exc, Stopped) else "interrupted"
    return (f"fpt-bench: {how} (finished cells are kept; a cell that was running keeps its last checkpoint and "
            "its lock is released: run the same command again to resume)")


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def stop_signals_as_interrupts() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM and SIGHUP raise :class:`Stopped`; the handlers before are
    put back after it. Signals that were ignored stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current == signal.SIG_IGN:
            continue
        before[signum] = current
        signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


# ---------------------------------------------------------------------------------------- worker processes
_state = {"running": False, "stopping": 0}


def _worker_signal(signum: int, frame: FrameType | None) -> None:
    if _state["stopping"]:  # the first signal is unwinding the cell: let it finish its cleanup
        return
    _state["stopping"] = signum
    if _state["running"]:
        raise Stopped(signum)


def worker_handlers() -> None:
    """Install the worker's handlers (its initializer calls this) for SIGINT, SIGTERM and SIGHUP, then let the
    signals through that the main process blocked while it started the worker."""
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _worker_signal)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, *STOP_SIGNALS))


def worker_stopping() -> int:
    """The signal this worker was asked to stop by (0: none): it takes no more cells."""
    return int(_state["stopping"])


@contextmanager
def worker_cell() -> Iterator[None]:
    """A cell running in a worker: a stop signal now raises :class:`Stopped` inside it."""
    if _state["stopping"]:
        raise Stopped(int(_state["stopping"]))
    _state["running"] = True
    try:
        yield
    finally:
        _state["running"] = False


@contextmanager
def signals_blocked() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP held back (not lost) in the calling thread: processes started meanwhile begin
    with them blocked, so a signal that arrives while a worker starts up cannot kill it mid-import with a
    traceback; the worker unblocks them once its handlers are in place. Delivered here when the block ends."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = (signal.SIGINT, *STOP_SIGNALS)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def quiet_exit(exc: KeyboardInterrupt) -> int:
    """Print the interrupted message and return the exit code (for the command line's entry points)."""
    print(interrupted_message(exc), file=sys.stderr)
    return exit_code(exc)
