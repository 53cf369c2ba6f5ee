"""Tiny configurations of every built-in backbone, shared by the test_backbones_* files."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fpt_bench.api.model import FPTModel
from fpt_bench.host.manager import get_host

# name -> (backbone, backbone args): every built-in backbone and every hf_encoder family, tiny and random
TINY: dict[str, tuple[str, dict[str, Any]]] = {
    "gpt2": ("gpt2", {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}),
    "bert": ("hf_encoder", {"weights": "random", "family": "bert", "n_layers": 2, "n_embd": 32, "n_head": 2}),
    "roberta": ("hf_encoder", {"weights": "random", "family": "roberta", "n_layers": 2, "n_embd": 32, "n_head": 2}),
    "t5": ("hf_encoder", {"weights": "random", "family": "t5", "n_layers": 2, "n_embd": 32, "n_head": 2}),
    "longformer": ("hf_encoder", {"weights": "random", "family": "longformer", "n_layers": 2, "n_embd": 32,
                                  "n_head": 2}),
    "vit": ("vit", {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}),
    "lstm": ("lstm", {"n_layers": 2, "hidden_size": 32}),
    "lstm_plain": ("lstm", {"n_layers": 2, "hidden_size": 32, "layer_norm": False, "residual": True,
                            "positions": True}),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread (and do not fight other processes for the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def host():  # type: ignore[no-untyped-def]
    return get_host()


def build_backbone(name: str, args: dict[str, Any], max_len: int = 10, seed: int = 0):  # type: ignore[no-untyped-def]
    plugin = host().backbones.get(name)
    torch.manual_seed(seed)
    return plugin.build(plugin.options(args), max_len)


def build_model(key: str, policy: str = "fpt", policy_args: dict[str, Any] | None = None,
                task: str = "bit_xor", **overrides: Any) -> FPTModel:
    name, args = TINY[key]
    spec = host().tasks.get(task).spec
    model = FPTModel(spec, build_backbone(name, {**args, **overrides}, spec.max_len))
    freeze = host().policies.get(policy)
    freeze.apply(model, freeze.options(policy_args or {}))
    return model
