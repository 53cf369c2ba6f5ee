"""``fpt-bench run --log KIND=TARGET``: the run-event loggers a run writes to.

``--log jsonl=events.jsonl`` sets ``FPT_BENCH_LOG_JSONL=events.jsonl``, the variable the logger that reads that kind
looks at (worker processes inherit it). A kind no loaded logger reads is refused: it would log nothing.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any

from fpt_bench.api.errors import UserError, did_you_mean

LOG_ENV_PREFIX = "FPT_BENCH_LOG_"


def apply_log_flags(values: list[str] | None) -> None:
    """``--log jsonl=events.jsonl`` -> ``FPT_BENCH_LOG_JSONL=events.jsonl`` for the loggers (and worker processes).
    A kind no loaded logger reads is a user error (with the closest known kind): it would log nothing."""
    pairs = []
    for value in values or []:
        kind, sep, target = value.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", kind.strip()) or not target.strip():
            raise UserError(f"--log {value!r}: expected KIND=TARGET, e.g. --log jsonl=events.jsonl")
        pairs.append((value, kind.strip(), target.strip()))
    if pairs:
        from fpt_bench.host.manager import get_host

        known = log_kinds(get_host())
        for value, kind, _ in pairs:
            if kind.lower() not in known:
                raise UserError(
                    f"--log {value!r}: no installed logger reads {kind!r}{did_you_mean(kind.lower(), known)} "
                    f"(loggers here: {', '.join(sorted(known)) or 'none'}). A plugin's logger declares its kinds in "
                    f"a module-level LOG_KINDS or reads {LOG_ENV_PREFIX}<KIND>; see `fpt-bench plugins` for plugins "
                    f"that failed to load")
    for _, kind, target in pairs:
        os.environ[LOG_ENV_PREFIX + kind.upper()] = target


RUN_EVENT_HOOKS = ("fpt_bench_cell_started", "fpt_bench_cell_evaluated", "fpt_bench_cell_finished")
_LOG_VARIABLE = re.compile(LOG_ENV_PREFIX + r"([A-Z][A-Z0-9_]*)")


def log_kinds(host: Any) -> set[str]:
    """The ``--log`` kinds the loaded plugins' loggers read (lower case): each module implementing a run-event hook
    lists them in ``LOG_KINDS``, or else names its variables ``FPT_BENCH_LOG_<KIND>`` in its source (the
    convention docs/writing-plugins.md describes)."""
    kinds: set[str] = set()
    for hook in RUN_EVENT_HOOKS:
        for impl in getattr(host.pm.hook, hook).get_hookimpls():
            module = inspect.getmodule(impl.function)
            declared = getattr(module, "LOG_KINDS", None) or getattr(impl.plugin, "LOG_KINDS", None)
            if declared:
                kinds |= {str(k).lower() for k in declared}
                continue
            try:
                source = inspect.getsource(module) if module is not None else ""
            except (OSError, TypeError):
                continue
            kinds |= {name.lower() for name in _LOG_VARIABLE.findall(source)}
    return kinds
