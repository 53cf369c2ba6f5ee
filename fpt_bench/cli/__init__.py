"""The ``fpt-bench`` command: parse, call the core, print."""

from fpt_bench.cli.app import main

__all__ = ["main"]
