"""The public transformer-backbone builder (fpt_bench.api.transformer) as a third party uses it: a backbone written
against the public API only, with the default truncate, built from random weights, from a pretrained folder and
with weights=stats; roles and layers come from its RoleMap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fpt_bench import BackboneSpec, Role, UserError
from fpt_bench.api.structure import RoleMap, TransformerOptions
from fpt_bench.api.transformer import TransformerBackbone, TransformerModule

WIDTH, DEPTH = 8, 4


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(WIDTH)
        self.ff = nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ff(self.norm(x))


class Stack(TransformerModule):
    role_map = RoleMap(layers="blocks", layer=(("norm", Role.NORM), ("ff", Role.FEEDFORWARD)))

    def __init__(self, provenance: dict[str, Any]) -> None:
        super().__init__(provenance)
        self.hidden_size, self.n_layers = WIDTH, DEPTH
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            embeds = block(embeds)
        return embeds


class Toy(TransformerBackbone):
    spec = BackboneSpec(name="toy", description="four residual blocks")
    Options = TransformerOptions
    kind = "toy"

    def random_module(self, options: Any, max_len: int, provenance: dict[str, Any]) -> Stack:
        return Stack(provenance)  # all DEPTH blocks: the builder keeps the first n_layers

    def pretrained_module(self, source: str, options: Any, max_len: int, provenance: dict[str, Any]) -> Stack:
        module = Stack(provenance)
        module.load_state_dict(load_file(str(Path(source) / "model.safetensors")))
        return module


def build(**args: Any) -> Stack:
    toy = Toy()
    return toy.build(toy.options(args), max_len=16)  # type: ignore[return-value]


def test_every_weight_source_keeps_the_first_n_layers_and_roles_come_from_the_role_map(tmp_path: Path) -> None:
    torch.manual_seed(0)
    saved = Stack({})
    save_file(saved.state_dict(), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text("{}")  # a folder as save_pretrained leaves it
    random = build(weights="random", n_layers=2)
    pretrained = build(source=str(tmp_path), n_layers=3)
    stats = build(weights="stats", source=str(tmp_path))
    assert (len(random.blocks), random.n_layers, len(pretrained.blocks), stats.n_layers) == (2, 2, 3, DEPTH)
    torch.testing.assert_close(pretrained.blocks[2].ff.weight, saved.blocks[2].ff.weight)
    assert not torch.equal(stats.blocks[0].ff.weight, saved.blocks[0].ff.weight)  # redrawn from its mean and std
    assert stats.provenance()["tensors_redrawn"] == 4 * DEPTH
    assert pretrained.provenance() == {"weights": "pretrained", "source": str(tmp_path)}
    roles = random.parameter_roles()
    assert roles == {f"blocks.{i}.{m}.{p}": role for i in range(2) for m, role in
                     (("norm", Role.NORM), ("ff", Role.FEEDFORWARD)) for p in ("weight", "bias")}
    assert set(random.parameter_layers().values()) == {0, 1}
    with pytest.raises(UserError, match="n_layers=9, but the model has only 4 layers"):
        build(weights="random", n_layers=9)


def test_a_module_without_its_block_list_says_to_override_truncate() -> None:
    class Elsewhere(Stack):
        role_map = RoleMap(layers="layers", layer=Stack.role_map.layer)

    toy = Toy()
    toy.random_module = lambda options, max_len, provenance: Elsewhere(provenance)  # type: ignore[method-assign]
    with pytest.raises(TypeError, match=r"Elsewhere has no ModuleList of blocks at 'layers' .*override truncate"):
        toy.build(toy.options({"weights": "random"}), max_len=16)


def test_save_backbone_refuses_a_module_that_cannot_be_rebuilt_before_training(tmp_path: Path) -> None:
    import json
    import types

    from fpt_bench import hookimpl
    from fpt_bench.cli import main
    from fpt_bench.host.manager import get_host

    class Undescribed(Toy):
        spec = BackboneSpec(name="undescribed_toy", description="a module whose architecture() says nothing")

    plugin = types.ModuleType("undescribed_plugin")
    plugin.fpt_bench_register_backbones = hookimpl(lambda registry: registry.add(Undescribed()))  # type: ignore[attr-defined]
    assert get_host().register(plugin, "undescribed").status == "ok"
    try:
        code = main(["run", "--task", "bit_xor", "--backbone", "undescribed_toy", "--backbone-args", "weights=random",
                     "--profile", "smoke", "--steps", "2", "--save-backbone", "--device", "cpu", "--no-progress",
                     "--output-dir", str(tmp_path)])
    finally:
        get_host(reload=True)
    [result] = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert code == 2 and result["status"] == "failed" and result["error_kind"] == "user"
    assert result["error"].startswith("--save-backbone: backbone 'undescribed_toy' cannot be saved for reloading")
    assert result["metrics"]["curve"] == []  # refused before the first step
