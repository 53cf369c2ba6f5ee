"""The ``fpt-bench`` command: parse, call the core, print. User errors exit with code 2 and one message.

Start-up stays light: ``--help``, ``--version`` and a subcommand's ``--help`` import neither torch nor the plugins,
except ``run`` (its flags include the executors' options, which come from plugins).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.cli import authoring, data, leaderboard, listing, run, verify
from fpt_bench.infra.signals import quiet_exit, stop_signals_as_interrupts


class BriefParser(argparse.ArgumentParser):
    """A parser whose errors are one message and where to look, not the whole usage (``run``'s is 20 lines)."""

    def error(self, message: str) -> Any:  # argparse's contract: print and exit with code 2
        self.exit(2, f"{self.prog}: error: {message}{self._near(message)}\n"
                     f"  (`{self._command()} --help` lists what it takes)\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.argv = list(sys.argv[1:] if args is None else args)  # the subcommand, for error messages
        return super().parse_args(args, namespace)

    def _subcommand(self) -> tuple[str, argparse.ArgumentParser] | None:
        """The subcommand the command line names (its first word) and its parser, when the top parser has it."""
        words = [w for w in getattr(self, "argv", []) if not w.startswith("-")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and words and words[0] in action.choices:
                return words[0], action.choices[words[0]]
        return None

    def _command(self) -> str:
        """``fpt-bench run`` when the top parser reports a ``run`` flag it did not know (run's help lists them)."""
        chosen = self._subcommand()
        return f"{self.prog} {chosen[0]}" if chosen else self.prog

    def _near(self, message: str) -> str:
        """For an unrecognized flag: the subcommand's flags closest to it (``run --taks`` -> ``--task``)."""
        if not message.startswith("unrecognized arguments: "):
            return ""
        from fpt_bench.api.errors import did_you_mean

        chosen = self._subcommand()
        parsers = [self, chosen[1]] if chosen else [self]
        flags = [f for p in parsers for a in p._actions for f in a.option_strings if f.startswith("--")]
        given = [w.split("=", 1)[0] for w in message.split(": ", 1)[1].split() if w.startswith("--")]
        return did_you_mean(given[0], [f for f in flags if f != "--help"]) if given else ""


def parser(host: Any = None) -> argparse.ArgumentParser:
    """The command line; with ``host``, ``run`` also has its plugins' flags."""
    top = BriefParser(prog="fpt-bench", description="Benchmark frozen pretrained transformers.")
    top.add_argument("--version", action="store_true", help="print the version and exit")
    sub = top.add_subparsers(dest="command")
    run.add_parser(sub, host)
    listing.add_parsers(sub)
    leaderboard.add_parser(sub)
    authoring.add_parser(sub)
    data.add_parser(sub)
    verify.add_parser(sub)
    return top


COMMANDS = {"run": run.cmd_run, "plugins": listing.cmd_plugins, "ls": listing.cmd_ls, "schema": listing.cmd_schema,
            "data": data.run, **dict.fromkeys(leaderboard.COMMANDS, leaderboard.run),
            "check-plugin": authoring.run, "new-plugin": authoring.run, "verify": verify.run}


def run_config(argv: list[str]) -> Any:
    """``fpt-bench run ARGV``'s configuration (a ``RunConfig``), without running anything (tests, benchmarks)."""
    from fpt_bench.host.manager import get_host

    return run.config_from_args(parser(get_host()).parse_args(["run", *argv]))


def _wants_run(argv: list[str]) -> bool:
    """Does this command line run ``run`` (whose flags need the plugins loaded)?"""
    words = [a for a in argv if not a.startswith("-")]
    return bool(words) and words[0] == "run"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with stop_signals_as_interrupts():  # SIGTERM and SIGHUP stop like Ctrl-C (fpt_bench/infra/signals.py)
        try:
            return _main(argv)
        except KeyboardInterrupt as exc:  # Ctrl-C or a stop signal, wherever it came: the same one line
            return quiet_exit(exc)


def _main(argv: list[str]) -> int:
    try:
        host = None
        if _wants_run(argv):
            from fpt_bench.host.manager import get_host

            host = get_host()
        args = parser(host).parse_args(argv)
        if args.version:
            from fpt_bench import __version__

            print(f"fpt-bench {__version__}")
            return 0
        if args.command is None:
            parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"fpt-bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, RuntimeError) as exc:  # a NUL byte or an unknown ~user in a path: a user error too
        from fpt_bench.infra.failures import bad_path_message

        path_message = bad_path_message(exc)
        if path_message is None:
            raise
        print(f"fpt-bench: error: {path_message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `fpt-bench ls | head`: the reader left; say nothing more (Python's advice)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a destination that refused, outside the write helpers: its path and the problem
        from fpt_bench.infra.destination import os_error_message

        message = os_error_message(exc)
        if message is None:
            raise
        print(f"fpt-bench: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
