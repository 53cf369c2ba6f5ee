"""``RunContext``: how cells run, resolved (the device, the data folder, the executor's options) — the run options
of ``RunConfig`` as they reach every cell, in this process, a worker process or a cluster worker (it pickles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from fpt_bench.cells.config import RunConfig, RunOptions
from fpt_bench.host.manager import Host, get_host


class RunContext(RunOptions):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    data_dir: Path = Field(description="the data folder, resolved")
    executor_options: Any = Field(default=None, description="the executor's Options, validated from executor_args")
    plugin_host: Any = Field(default=None, exclude=True,
                             description="a host of one's own (conformance checks); default: the process's host")

    @property
    def host(self) -> Host:
        return self.plugin_host or get_host()

    @classmethod
    def from_config(cls, config: RunConfig, **resolved: Any) -> RunContext:
        """The run options of ``config`` with the resolved values given (``device``, ``data_dir``, ...)."""
        values = {name: getattr(config, name) for name in RunOptions.model_fields}
        return cls(**{**values, **resolved})
