"""fpt-bench: a plugin-based benchmark harness for frozen pretrained transformers.

The public plugin API: the ``hookimpl`` marker, the plugin base classes and the spec types.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"
PLUGIN_API = "1.0"  # major bumps break plugins; minor bumps only add

hookimpl = pluggy.HookimplMarker("fpt_bench")

from fpt_bench.infra.threads import passive_openmp  # noqa: E402

passive_openmp()  # before torch is imported (fpt_bench/infra/threads.py says why)

from fpt_bench.api.backbone import Backbone, BackboneModule  # noqa: E402
from fpt_bench.api.errors import CorruptFileError, DataMissingError, PluginError, UserError  # noqa: E402
from fpt_bench.api.policy import FreezePolicy  # noqa: E402
from fpt_bench.api.roles import Role  # noqa: E402
from fpt_bench.api.specs import (  # noqa: E402
    BackboneSpec,
    CellConfig,
    Continuous,
    HParamOverrides,
    LayerSelection,
    OutputSpec,
    PaperHParams,
    PolicySpec,
    Readout,
    SuiteCell,
    SuiteSpec,
    TaskSpec,
    Tokens,
)
from fpt_bench.api.task import Batch, DataFile, NoOptions, SplitData, Task  # noqa: E402
from fpt_bench.results.schema import CellResult  # noqa: E402

__all__ = [
    "PLUGIN_API", "Backbone", "BackboneModule", "BackboneSpec", "Batch", "CellConfig", "CellResult",
    "Continuous", "CorruptFileError", "DataFile", "DataMissingError", "FreezePolicy", "HParamOverrides",
    "LayerSelection", "NoOptions", "OutputSpec", "PaperHParams", "PluginError", "PolicySpec", "Readout", "Role",
    "SplitData", "SuiteCell", "SuiteSpec", "Task", "TaskSpec", "Tokens", "UserError", "__version__", "hookimpl",
]
