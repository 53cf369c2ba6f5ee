"""The ``fpt-bench`` command: parse, call the core, print.

``main`` is the console script. It puts the stop signals' handlers in place and then imports the command line
itself, so that Ctrl-C (or SIGTERM, SIGHUP) while Python is still importing ends with the same one line as at any
later moment, not a traceback.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``fpt-bench ARGV`` (default ``sys.argv[1:]``); returns the exit code."""
    from fpt_bench.infra.signals import quiet_exit, stop_signals_as_interrupts

    with stop_signals_as_interrupts():
        try:
            from fpt_bench.cli.app import main as run

            return run(argv)
        except KeyboardInterrupt as exc:
            return quiet_exit(exc)


__all__ = ["main"]
