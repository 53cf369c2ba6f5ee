"""GPT-2 backbone: roles, depth, position growth, and pretrained loading through the real code path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import result_files, run_subprocess

from fpt_bench.api.errors import UserError
from fpt_bench.api.roles import Role
from fpt_bench.host.manager import get_host


def gpt2():
    return get_host().backbones.get("gpt2")


def build(args: dict, max_len: int = 16):
    plugin = gpt2()
    return plugin.build(plugin.options(args), max_len)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    model = GPT2Model(GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=64))
    path = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(path)
    return path


def test_every_parameter_has_a_structural_role() -> None:
    module = build({"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2})
    roles = module.parameter_roles()
    assert set(roles) == {n for n, _ in module.named_parameters()}
    assert roles["model.wte.weight"] == Role.TOKEN_EMBEDDING
    assert roles["model.wpe.weight"] == Role.POSITION
    assert roles["model.h.1.attn.c_attn.weight"] == Role.ATTENTION
    assert roles["model.h.0.mlp.c_proj.bias"] == Role.FEEDFORWARD
    assert roles["model.h.0.ln_2.weight"] == Role.NORM and roles["model.ln_f.bias"] == Role.NORM
    assert module.parameter_layers()["model.h.1.mlp.c_fc.weight"] == 1


def test_random_weights_build_from_config_alone_with_sizes() -> None:
    module = build({"weights": "random", "n_layers": 1})  # base width, one block, no download
    assert (module.hidden_size, module.n_layers, module.max_positions) == (768, 1, 1024)


def test_pretrained_from_local_dir_matches_saved_weights(saved_tiny: Path) -> None:
    from transformers import GPT2Model

    module = build({"source": str(saved_tiny)})
    reference = GPT2Model.from_pretrained(saved_tiny)
    assert module.n_layers == 3 and module.hidden_size == 32
    for (name, a), (_, b) in zip(module.model.named_parameters(), reference.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    assert module.provenance() == {"weights": "pretrained", "source": str(saved_tiny)}


def test_depth_truncation_keeps_the_first_blocks(saved_tiny: Path) -> None:
    from transformers import GPT2Model

    module = build({"source": str(saved_tiny), "n_layers": 2})
    reference = GPT2Model.from_pretrained(saved_tiny)
    assert module.n_layers == 2 and module.model.config.n_layer == 2
    assert torch.equal(module.model.h[1].attn.c_attn.weight, reference.h[1].attn.c_attn.weight)
    with pytest.raises(UserError, match="n_layers=5, but .* has only 3 layers"):
        build({"source": str(saved_tiny), "n_layers": 5})


def test_positions_grow_for_long_tasks(saved_tiny: Path) -> None:
    module = build({"source": str(saved_tiny)}, max_len=100)
    assert module.max_positions == 100
    assert module.provenance()["extended_positions"] == {"from": 64, "to": 100}
    from transformers import GPT2Model

    reference = GPT2Model.from_pretrained(saved_tiny)
    assert torch.equal(module.model.wpe.weight[:64], reference.wpe.weight)
    out = module(torch.randn(2, 100, 32))
    assert out.shape == (2, 100, 32)


def test_missing_weights_offline_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        build({"source": str(tmp_path / "empty")})
    assert str(info.value) == (f"could not load pretrained weights from the local directory {tmp_path / 'empty'}: no "
                               "such folder. weights=random builds GPT-2 from its config alone (no files)")
    with pytest.raises(UserError) as info:
        build({"source": "tiny-org/absent"})  # a hub id, offline and not cached
    message = str(info.value)
    assert message.startswith("the model 'tiny-org/absent' is not here (not in the Hugging Face cache ")
    assert "--backbone-args source=/that/folder" in message and message.endswith(
        "weights=random builds GPT-2 from its config alone (no files)")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(UserError, match=f"could not load pretrained weights from the local directory {empty}"):
        build({"source": str(empty)})


def test_options_are_validated() -> None:
    with pytest.raises(UserError, match="n_embd and n_head only apply to weights=random"):
        gpt2().options({"n_embd": 64})


def test_hub_id_resolves_from_a_hub_cache_offline(saved_tiny: Path, tmp_path: Path) -> None:
    """The same path a hub id takes: an offline Hugging Face cache laid out as the hub client writes it."""
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--tiny-org--tiny-gpt2"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for f in saved_tiny.iterdir():
        shutil.copy(f, snapshot / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    out = tmp_path / "out"
    proc = run_subprocess(
        "run", "--task", "bit_xor", "--backbone-args", "source=tiny-org/tiny-gpt2", "--profile", "smoke",
        "--steps", "2", "--device", "cpu", "--output-dir", str(out),
        env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(result_files(out)[0].read_text())
    assert data["status"] == "ok"
    assert data["provenance"]["backbone"] == {"weights": "pretrained", "source": "tiny-org/tiny-gpt2"}
    assert data["parameters"]["by_role"]["attention"]["trainable"] == 0


def _saved_activation_bytes(module, batch: int, seq: int) -> tuple[int, torch.Tensor]:
    """Bytes of the non-parameter tensors autograd keeps for the backward pass of an FPT-style forward (every
    backbone weight frozen, the input needs its gradient), and the output."""
    for p in module.parameters():
        p.requires_grad_(False)
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = torch.randn(batch, seq, module.hidden_size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    weights = {p.untyped_storage().data_ptr() for p in module.parameters()}
    return sum(n for ptr, n in kept.items() if ptr not in weights), out


def test_fused_gelu_is_the_same_function_and_keeps_three_fewer_tensors_per_block() -> None:
    """gelu=fused (the default) and gelu=composite (transformers' gelu_new) agree, and the fused kernel saves
    exactly three tensors of the MLP's width (4 x 32 floats per token) per block for the backward pass."""
    args = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2, "dropout": 0}
    torch.manual_seed(0)
    fused = build(args)
    torch.manual_seed(0)
    composite = build({**args, "gelu": "composite"})
    assert (fused.activation, composite.activation) == ("gelu_pytorch_tanh", "gelu_new")
    assert all(type(block.mlp.act).__name__ == "NewGELUActivation" for block in composite.model.h)
    fused_bytes, a = _saved_activation_bytes(fused, batch=3, seq=5)
    composite_bytes, b = _saved_activation_bytes(composite, batch=3, seq=5)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert composite_bytes - fused_bytes == 2 * 3 * (3 * 5 * 4 * 32) * 4  # layers x tensors x floats x bytes


def test_pretrained_gpt2_runs_the_fused_gelu_on_its_own_weights(saved_tiny: Path) -> None:
    from transformers import GPT2Model

    assert json.loads((saved_tiny / "config.json").read_text())["activation_function"] == "gelu_new"
    module = build({"source": str(saved_tiny), "dropout": 0}).eval()
    reference = GPT2Model.from_pretrained(saved_tiny).eval()
    assert module.activation == module.model.config.activation_function == "gelu_pytorch_tanh"
    assert module.architecture()["config"]["activation_function"] == "gelu_pytorch_tanh"
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(inputs_embeds=x).last_hidden_state, rtol=1e-5, atol=1e-6)
