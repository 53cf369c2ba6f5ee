"""Imported once by the forkserver of the reliability tests, so that every forked child starts warm: torch,
transformers' GPT-2, the harness (with the modules ``fpt-bench run`` imports lazily) and its plugins are loaded
already. Nothing here runs a torch operation (the children are forked from this process)."""

import packaging.requirements  # noqa: F401
import torch  # noqa: F401
import transformers.models.gpt2.modeling_gpt2  # noqa: F401

import fpt_bench.cells.config  # noqa: F401
import fpt_bench.cells.runner  # noqa: F401
import fpt_bench.cells.sweep  # noqa: F401
import fpt_bench.cli.app  # noqa: F401
import fpt_bench.datastore.files  # noqa: F401
import fpt_bench.host.requirements  # noqa: F401
import fpt_bench_plugins.backbones.gpt2  # noqa: F401
import fpt_bench_plugins.backbones.gpt2_module  # noqa: F401
from fpt_bench.host.manager import get_host

get_host()
