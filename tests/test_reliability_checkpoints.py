"""Malformed checkpoints (issue 18, class 4): every checkpoint is validated before it is used.

- A backbone checkpoint (``weights=checkpoint:PATH``) with broken metadata (not JSON, wrong types, an unknown
  family), an architecture that does not build or does not match its tensors (a forged depth or width, a tensor of
  another shape or dtype, a missing or extra tensor, aliases that point nowhere) is one clear error naming the
  file; a forged size allocates nothing (the module is first built on the meta device).
- ``source=DIR`` never unpickles a ``pytorch_model.bin``: a folder must hold safetensors.
- A resume checkpoint that does not fit its cell (wrong structure, a step beyond the budget, a curve that does not
  match the evaluation steps, parameters or Adam state that are not the model's) is ignored with a warning and the
  cell starts over -- the issue's case, step 10^6 with a forged curve of 1.0, gives exactly the fresh run's result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from backbone_helpers import TINY, build_backbone
from conftest import result_files, run_cli
from reliability_support import tally
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_reliability_untrusted import Call

from fpt_bench import CorruptFileError, UserError
from fpt_bench.api.backbone_checkpoint import save_backbone
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.training.loop import CHECKPOINT_VERSION
from fpt_bench.training.resume_check import usable_state


# ------------------------------------------------------------------------------------- backbone checkpoints
class _Holder(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny saved backbone of each built-in kind."""
    folder = tmp_path_factory.mktemp("backbones")
    out = {}
    for key in ("gpt2", "vit", "lstm", "bert"):
        name, args = TINY[key]
        path = folder / f"{key}.backbone.safetensors"
        save_backbone(_Holder(build_backbone(name, args)), path, name, {"task": "bit_xor"})
        out[key] = path
    return out


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
    return load_file(str(path)), meta


def _forge(src: Path, dst: Path, tensors: Any = None, **meta: Any) -> Path:
    real, metadata = _read(src)
    metadata.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    save_file(real if tensors is None else tensors(real), str(dst), metadata=metadata)
    return dst


def _arch(src: Path, **changes: Any) -> dict[str, Any]:
    arch = json.loads(_read(src)[1]["architecture"])
    config = dict(arch.get("config", {}))
    config.update(changes.pop("config", {}))
    return {**arch, **({"config": config} if "config" in arch else {}), **changes}


def _renamed(tensors: dict[str, torch.Tensor], old: str, new: str) -> dict[str, torch.Tensor]:
    return {new if k == old else k: v for k, v in tensors.items()}


GPT2_CASES: dict[str, tuple[dict[str, Any], str]] = {  # name -> (what to forge, expected message)
    "architecture not JSON": ({"architecture": "{not json"}, "'architecture' is not JSON"),
    "architecture a list": ({"architecture": [1, 2]}, "broken fpt-bench backbone metadata"),
    "architecture without a kind": ({"architecture": {"config": {}}}, "broken fpt-bench backbone metadata"),
    "config missing": ({"architecture": {"kind": "gpt2"}}, "its gpt2 architecture metadata is broken"),
    "config a string": ({"architecture": {"kind": "gpt2", "config": "n_layer=2"}}, "metadata is broken"),
    "aliases a list": ({"aliases": ["x"]}, "broken fpt-bench backbone metadata"),
    "aliases to nothing": ({"aliases": {"model.wte.weight2": "nothing"}}, "which is not stored"),
    "alias over a stored tensor": ({"aliases": {"model.wpe.weight": "model.wte.weight"}}, "names a stored tensor"),
    "backbone name with a slash": ({"backbone": "../gpt2"}, "broken fpt-bench backbone metadata"),
    "unknown metadata key": ({"extra": "1"}, "broken fpt-bench backbone metadata"),
    "depth of a billion layers": ({"config": {"n_layer": 10**9}}, "layers, but the file holds only"),
    "a wider model than the tensors": ({"config": {"n_embd": 64}}, "tensors do not match its architecture"),
    "four million labels": ({"config": {"num_labels": 4_000_000, "id2label": None, "label2id": None}},
                            "architecture.config.num_labels = 4000000 labels (at most 100000)"),
    "a label map of 200,000": ({"config": {"id2label": {str(i): "x" for i in range(200_000)}}},
                               "architecture.config.id2label = 200000 labels"),
    "a trillion positions": ({"config": {"n_positions": 10**12}}, "tensors do not match its architecture"),
    "heads that do not divide the width": ({"config": {"n_head": 3}}, "does not build a 'gpt2' backbone"),
    "a config value of the wrong type": ({"config": {"n_embd": "wide"}}, "does not build a 'gpt2' backbone"),
    "one tensor of another shape": ({"tensors": lambda t: {**t, "model.ln_f.weight": torch.ones(2, 16)}},
                                    "model.ln_f.weight is [2, 16] in the file, [32] in the module"),
    "a tensor of integers": ({"tensors": lambda t: {**t, "model.ln_f.weight": torch.ones(32, dtype=torch.int64)}},
                             "model.ln_f.weight is I64 in the file"),
    "a missing tensor": ({"tensors": lambda t: {k: v for k, v in t.items() if k != "model.ln_f.bias"}},
                         "missing ['model.ln_f.bias']"),
    "an extra tensor": ({"tensors": lambda t: {**t, "model.evil": torch.zeros(1)}}, "unexpected ['model.evil']"),
    "a renamed tensor": ({"tensors": lambda t: _renamed(t, "model.ln_f.bias", "model.ln_g.bias")},
                         "does not fit the module built from its own architecture"),
}


@pytest.mark.parametrize("case", list(GPT2_CASES))
def test_malformed_backbone_checkpoint_is_one_clear_error(honest: dict[str, Path], tmp_path: Path,
                                                          case: str) -> None:
    forged, expected = GPT2_CASES[case]
    forged = dict(forged)
    tensors = forged.pop("tensors", None)
    if "config" in forged:
        forged = {"architecture": _arch(honest["gpt2"], config=forged.pop("config"))}
    path = _forge(honest["gpt2"], tmp_path / "forged.backbone.safetensors", tensors, **forged)
    started = time.perf_counter()
    with pytest.raises(CorruptFileError) as err:
        build_backbone("gpt2", {"weights": f"checkpoint:{path}"})
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)
    assert time.perf_counter() - started < 20  # a forged size is refused, not allocated or built
    tally("untrusted inputs refused", "malformed backbone checkpoints", 1)


@pytest.mark.parametrize("kind, forged, expected", [
    ("vit", {"n_positions": -5}, "n_positions: Input should be greater than 0"),
    ("vit", {"n_positions": "1024"}, "n_positions: Input should be a valid integer"),
    ("vit", {"n_positions": 10**9}, "tensors do not match its architecture"),
    ("bert", {"family": "gpt9"}, "family: Input should be"),
    ("bert", {"config": {"num_hidden_layers": 7}}, "does not fit the module"),
    ("lstm", {"n_layers": "3"}, "n_layers: Input should be a valid integer"),
    ("lstm", {"hidden_size": 64}, "tensors do not match its architecture"),
    ("lstm", {"residual": "yes"}, "residual: Input should be a valid boolean"),
    ("lstm", {"n_layers": 5}, "does not fit the module"),
    ("lstm", {"extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_each_backbone_validates_its_own_architecture(honest: dict[str, Path], tmp_path: Path, kind: str,
                                                       forged: dict[str, Any], expected: str) -> None:
    name = TINY[kind][0]
    path = _forge(honest[kind], tmp_path / "forged.backbone.safetensors", architecture=_arch(honest[kind], **forged))
    with pytest.raises(CorruptFileError) as err:
        build_backbone(name, {"weights": f"checkpoint:{path}"})
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)
    tally("untrusted inputs refused", "malformed backbone checkpoints", 1)


def test_honest_checkpoints_still_load(honest: dict[str, Path]) -> None:
    for key, path in honest.items():
        name, args = TINY[key]
        rebuilt = build_backbone(name, {"weights": f"checkpoint:{path}"})
        saved = load_file(str(path))
        for tensor_name, value in saved.items():
            torch.testing.assert_close(rebuilt.state_dict()[tensor_name], value, rtol=0, atol=0)


def test_source_dir_never_unpickles_a_bin(tmp_path: Path) -> None:
    """A local folder with config.json and a pytorch_model.bin whose pickle would run code: refused with the fix
    (safetensors), the payload never runs; the same file under a plain torch.load does run it."""
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path / "tiny-gpt2"
    model = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2))
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "payload-ran"
    state: dict[str, Any] = dict(model.state_dict())
    state["evil"] = Call(open, str(marker), "w")
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match="model.safetensors") as err:
        build_backbone("gpt2", {"weights": "pretrained", "source": str(folder)})
    assert str(folder) in str(err.value) and "never read from a folder" in str(err.value)
    assert not marker.exists()
    torch.load(folder / "pytorch_model.bin", weights_only=False)  # noqa: S614 - proving the payload is live
    assert marker.exists()
    tally("untrusted inputs refused", "pickled weights under source=DIR", 1)


# -------------------------------------------------------------------------------------- resume checkpoints
ARGS = ["run", "--task", "bit_xor", "--backbone-args", "weights=random,n_layers=1,n_embd=16,n_head=2", "--profile",
        "smoke", "--steps", "6", "--eval-every", "2", "--checkpoint-every", "2", "--device", "cpu", "--no-progress",
        "--task-args", "n_val=32,n_test=32"]


@pytest.fixture(scope="module")
def resumable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished tiny cell and its last checkpoint (step 4 of 6), plus what its trainer would hold."""
    out = tmp_path_factory.mktemp("resume")
    assert run_cli(*ARGS, "--output-dir", str(out), "--keep-checkpoints")[0] == 0
    [result_file] = result_files(out)
    result = json.loads(result_file.read_text())
    raw = torch.load(result_file.with_suffix(".ckpt"), weights_only=True)
    hparams = TrainHParams(**result["cell"]["hparams"])
    return {"out": out, "result_file": result_file, "result": result, "raw": raw, "hparams": hparams}


def _trainer_parts(resumable: dict[str, Any]) -> tuple[dict[str, torch.Tensor], torch.optim.Optimizer]:
    from fpt_bench.training.speed import adam

    trainable = {n: torch.nn.Parameter(t.clone()) for n, t in resumable["raw"]["params"].items()}
    return trainable, adam(list(trainable.values()), resumable["hparams"], torch.device("cpu"))[0]  # as the trainer


def _check(resumable: dict[str, Any], state: Any, path: Path) -> dict[str, Any] | None:
    torch.save(state, path)
    trainable, optimizer = _trainer_parts(resumable)
    return usable_state(path, version=CHECKPOINT_VERSION, config_hash=resumable["result"]["provenance"]["config_hash"],
                        hparams=resumable["hparams"], trainable=trainable, optimizer=optimizer)


def _edit(raw: dict[str, Any], change: Any) -> Any:
    state = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in raw.items()}
    state["optimizer"] = {"state": {i: dict(s) for i, s in raw["optimizer"]["state"].items()},
                          "param_groups": [dict(g) for g in raw["optimizer"]["param_groups"]]}
    state["curve"] = [dict(p) for p in raw["curve"]]
    return change(state)


def _set(state: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    state[key] = value
    return state


def _first(tensors: dict[str, torch.Tensor]) -> str:
    return next(iter(tensors))


RESUME_CASES: dict[str, Any] = {
    "a list": lambda s: [s],
    "no params": lambda s: {k: v for k, v in s.items() if k != "params"},
    "step a string": lambda s: _set(s, "step", "4"),
    "step beyond the budget (10^6)": lambda s: _set(s, "step", 10**6),
    "step not a checkpoint step": lambda s: _set(s, "step", 3),
    "another config hash": lambda s: _set(s, "config_hash", "0" * 12),
    "another version": lambda s: _set(s, "version", 99),
    "a curve point missing": lambda s: _set(s, "curve", s["curve"][:1]),
    "a curve point added": lambda s: _set(s, "curve", [*s["curve"], {**s["curve"][-1], "step": 6}]),
    "an accuracy above 1": lambda s: _set(s, "curve", [{**p, "val_accuracy": 1.5} for p in s["curve"]]),
    "a NaN training loss": lambda s: _set(s, "curve", [{**p, "train_loss": float("nan")} for p in s["curve"]]),
    "best not the curve's best": lambda s: _set(s, "best", {**s["best"], "val": 1.0}),
    "no best with a curve": lambda s: _set(s, "best", None),
    "loss_n off": lambda s: _set(s, "loss_n", 5),
    "grad_chunks zero": lambda s: _set(s, "grad_chunks", 0),
    "an unknown parameter": lambda s: _set(s, "params", {**s["params"], "evil": torch.zeros(1)}),
    "a parameter missing": lambda s: _set(s, "params", dict(list(s["params"].items())[1:])),
    "a parameter of another shape": lambda s: _set(s, "params", {**s["params"], _first(s["params"]): torch.zeros(3)}),
    "a parameter in float64": lambda s: _set(s, "params", {k: v.double() for k, v in s["params"].items()}),
    "a NaN parameter": lambda s: _set(s, "params", {k: torch.full_like(v, float("nan")) for k, v in
                                                    s["params"].items()}),
    "Adam with another lr": lambda s: _set(s, "optimizer", {**s["optimizer"], "param_groups": [
        {**g, "lr": 10.0} for g in s["optimizer"]["param_groups"]]}),
    "Adam state of another shape": lambda s: _set(s, "optimizer", {**s["optimizer"], "state": {
        i: {**e, "exp_avg": torch.zeros(7)} for i, e in s["optimizer"]["state"].items()}}),
    "Adam counted more steps": lambda s: _set(s, "optimizer", {**s["optimizer"], "state": {
        i: {**e, "step": torch.tensor(1e6)} for i, e in s["optimizer"]["state"].items()}}),
    "Adam state of an unknown parameter": lambda s: _set(s, "optimizer", {**s["optimizer"], "state": {
        **s["optimizer"]["state"], 999: {"step": torch.tensor(1.0)}}}),
    "Adam listing other parameters": lambda s: _set(s, "optimizer", {**s["optimizer"], "param_groups": [
        {**g, "params": [0]} for g in s["optimizer"]["param_groups"]]}),
}


def test_honest_checkpoint_fits(resumable: dict[str, Any], tmp_path: Path) -> None:
    state = _check(resumable, resumable["raw"], tmp_path / "c.ckpt")
    assert state is not None and state["step"] == 4


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_checkpoint_that_does_not_fit_is_ignored(resumable: dict[str, Any], tmp_path: Path, case: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.ckpt"
    assert _check(resumable, _edit(resumable["raw"], RESUME_CASES[case]), path) is None
    err = capsys.readouterr().err
    assert f"ignoring the checkpoint {path}" in err and "the cell starts over" in err, err
    tally("untrusted inputs refused", "resume checkpoints that do not fit", 1)


def test_forged_step_and_curve_give_the_fresh_result(resumable: dict[str, Any], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case end to end: the checkpoint says step 10^6 and a curve of perfect accuracies. The cell
    ignores it, starts over and ends with exactly the metrics of the same cell run from scratch."""
    out = tmp_path / "out"
    assert run_cli(*ARGS, "--output-dir", str(out), "--keep-checkpoints")[0] == 0
    [result_file] = result_files(out)
    honest = json.loads(result_file.read_text())
    state = torch.load(result_file.with_suffix(".ckpt"), weights_only=True)
    state["step"] = 10**6
    state["curve"] = [{"step": s, "train_loss": 0.0, "val_accuracy": 1.0} for s in range(2, 10**6 + 1, 2)][:3]
    state["best"] = {"val": 1.0, "step": 2, "params": state["params"]}
    torch.save(state, result_file.with_suffix(".ckpt"))
    code, _, err = run_cli(*ARGS, "--output-dir", str(out), "--overwrite", "always", capsys=capsys)
    assert code == 0 and "ignoring the checkpoint" in err and "is not a checkpoint step" in err
    again = json.loads(result_file.read_text())
    assert again["status"] == "ok" and again["timing"]["resumed_from_step"] is None
    assert again["metrics"] == honest["metrics"]  # bit for bit the fresh run's numbers
