"""fpt-bench: a plugin-based benchmark harness for frozen pretrained transformers.

This namespace is the public plugin API: every name below is documented (docs/writing-plugins.md) and kept stable
under ``PLUGIN_API``; anything else in ``fpt_bench.*`` is internal. Names are loaded on first use, so importing
``fpt_bench`` (and ``fpt-bench --help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
PLUGIN_API = "1.3"  # major bumps break plugins; minor bumps only add

from fpt_bench.infra.threads import passive_openmp  # noqa: E402

passive_openmp()  # before torch is imported (fpt_bench/infra/threads.py says why)

# public name -> the module that defines it
_HOMES: dict[str, str] = {
    **dict.fromkeys(["UserError", "PluginError", "DataMissingError", "CorruptFileError"], "fpt_bench.api.errors"),
    **dict.fromkeys(["Role", "FPT_ROLES"], "fpt_bench.api.roles"),
    **dict.fromkeys(["NoOptions", "Strict", "Flag"], "fpt_bench.api.options"),
    **dict.fromkeys(["TrainHParams", "HParamOverrides", "PaperHParams"], "fpt_bench.api.hparams"),
    **dict.fromkeys(["Continuous", "Tokens", "Readout", "OutputSpec", "TaskSpec", "BackboneSpec", "LayerSelection",
                     "PolicySpec", "ExecutorSpec"], "fpt_bench.api.specs"),
    **dict.fromkeys(["SuiteCell", "SuiteSpec"], "fpt_bench.api.suites"),
    **dict.fromkeys(["Objective", "Classification", "MultiLabel", "Regression"], "fpt_bench.api.objectives"),
    "CellConfig": "fpt_bench.api.cell",
    **dict.fromkeys(["Task", "Batch", "SplitData", "DataFile"], "fpt_bench.api.task"),
    "Backbone": "fpt_bench.api.backbone",
    "BackboneModule": "fpt_bench.api.backbone_module",
    "FreezePolicy": "fpt_bench.api.policy",
    "FPTModel": "fpt_bench.api.model",
    **dict.fromkeys(["derive_seed", "generator"], "fpt_bench.api.seeding"),
    "CellResult": "fpt_bench.results.schema",
}

__all__ = ["PLUGIN_API", "__version__", "hookimpl", *sorted(_HOMES)]


def __getattr__(name: str) -> Any:
    if name == "hookimpl":  # made on first use: the command line starts (and takes Ctrl-C) before pluggy loads
        import pluggy

        globals()["hookimpl"] = marker = pluggy.HookimplMarker("fpt_bench")
        return marker
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fpt_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
