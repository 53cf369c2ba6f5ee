"""Where data lives: ``--data-dir``, else ``$FPT_BENCH_DATA``, else the user cache directory."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "FPT_BENCH_DATA"


def default_data_dir() -> Path:
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fpt-bench" / "data"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()
