# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""The example plugin (examples/fpt-bench-example-plugin), installed with pip: listed, each of its components
runs a cell, required_plugins gates runs on it, and its W&B logger works without W&B."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from plugin_helpers import TINY_GPT2, example, plugin_site  # noqa: F401 - fixtures

from fpt_bench import Role
from fpt_bench.api.cell import CellConfig
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.api.model import FPTModel
from fpt_bench.cli import main
from fpt_bench.host.manager import Host
from fpt_bench.results.store import iter_results, read_result

CELL_FLAGS = ["--profile", "smoke", "--device", "cpu", "--steps", "4", "--eval-every", "2", "--no-progress"]
TINY_TRANSFORMER = "n_layers=2,d_model=32,n_head=2"


def _run(tmp_path: Path, *flags: str, required: list[str] | None = None) -> int:
    args = ["run", *CELL_FLAGS, "--output-dir", str(tmp_path / "results"), *flags]
    if required is not None:
        config = tmp_path / "run.toml"
        config.write_text(f"required_plugins = {json.dumps(required)}\n")
        args += ["--config", str(config)]
    return main(args)


def _only_result(tmp_path: Path):  # type: ignore[no-untyped-def]
    found = list(iter_results(tmp_path / "results"))
    assert len(found) == 1, found
    return read_result(found[0][0])


def test_pip_installed_example_is_listed(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (example / "fpt_bench_example-0.1.0.dist-info" / "entry_points.txt").is_file()
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["example"] == {
        "name": "example", "distribution": "fpt-bench-example", "version": "0.1.0", "status": "ok", "error": None,
        "registered": {"task": ["sine_next", "sort_digits"], "backbone": ["torch_transformer"],
                       "policy": ["fpt_last_layers"]}, "shared": {},
    }
    assert listed["example_wandb"]["status"] == "ok"
    assert listed["example_wandb"]["registered"] == {}


# (flags, result fields, trainable parameters) for one cell per component of the example plugin. Trainable counts:
# sort_digits + tiny GPT-2 + fpt: embedding 11*32 + output 32*10+10 + 5 LayerNorms 5*64 + positions 1024*32;
# bit_xor + tiny torch_transformer + fpt: input 1*32+32 + output 32*2+2 + 5 LayerNorms 5*64 + positions 10*32;
# bit_xor + tiny GPT-2 + fpt_last_layers: fpt (64 + 66 + 320 + 32768) + layer 1's attention (3168 + 1056) and MLP
# (4224 + 4128)
CELLS = {
    "task": (["--task", "sort_digits", "--backbone-args", TINY_GPT2],
             {"task": "sort_digits", "backbone": "gpt2", "policy": "fpt"}, 33_770),
    "backbone": (["--task", "bit_xor", "--backbone", "torch_transformer", "--backbone-args", TINY_TRANSFORMER],
                 {"task": "bit_xor", "backbone": "torch_transformer", "policy": "fpt"}, 770),
    "policy": (["--task", "bit_xor", "--backbone-args", TINY_GPT2, "--policy", "fpt_last_layers"],
               {"task": "bit_xor", "backbone": "gpt2", "policy": "fpt_last_layers"}, 45_794),
}


@pytest.mark.parametrize("component", list(CELLS))
def test_each_example_component_runs_a_cell(component: str, example: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    flags, fields, trainable = CELLS[component]
    assert _run(tmp_path, *flags, required=["fpt-bench-example>=0.1", "example"]) == 0, capsys.readouterr().err
    result = _only_result(tmp_path)
    assert result.status == "ok"
    assert {k: getattr(result.cell, k) for k in fields} == fields
    assert result.parameters is not None and result.parameters.trainable == trainable
    assert [p.step for p in result.metrics.curve] == [2, 4]
    assert 0.0 <= result.metrics.test_accuracy <= 1.0
    assert result.provenance.plugins["example"] == "0.1.0"
    # the plugin's results join the leaderboard like built-in ones
    from fpt_bench.leaderboard.collect import build_table, load_results
    from fpt_bench.leaderboard.render import long_records

    loaded, refused = load_results([tmp_path])
    assert refused == [] and len(loaded) == 1
    records = long_records(build_table(loaded, layout="long"))
    assert len(records) == 1
    assert fields["task"] in json.dumps(records[0]) and fields["backbone"] in json.dumps(records[0])


@pytest.mark.parametrize(("required", "message"), [
    (["fpt-bench-example>=9"], "fpt-bench-example>=9 (installed: 0.1.0)"),
    (["fpt-bench-example<0.1"], "fpt-bench-example<0.1 (installed: 0.1.0)"),
    (["fpt-bench-nonexistent>=1"], "fpt-bench-nonexistent>=1 (not installed or not loaded)"),
])
def test_required_plugins_stop_the_run_before_anything_runs(
        required: list[str], message: str, example: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, "--task", "sort_digits", "--backbone-args", TINY_GPT2, required=required) == 2
    err = capsys.readouterr().err
    assert err.startswith("fpt-bench: error: required plugins are missing: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_required_plugin_missing_when_not_installed(plugin_site, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, "--task", "bit_xor", required=["fpt-bench-example>=0.1"]) == 2
    assert "fpt-bench-example>=0.1 (not installed or not loaded)" in capsys.readouterr().err


def test_sort_digits_sorts(example: Path) -> None:
    task = Host().load_entry_points().tasks.get("sort_digits")
    options = task.options({"length": 5})
    spec = task.resolve_spec(options)
    assert (spec.max_len, spec.output.n_predictions, spec.output.k, spec.input.vocab_size) == (10, 5, 5, 11)
    batch = task.sample(64, torch.Generator().manual_seed(0), options)
    assert batch.x.shape == (64, 10) and batch.y.shape == (64, 5)
    assert torch.equal(batch.y, batch.x[:, :5].sort(dim=1).values)
    assert (batch.x[:, 5:] == 10).all() and (batch.y[:, 1:] >= batch.y[:, :-1]).all()
    test = task.load("test", options, Path("/nonexistent"))
    assert len(test) == 1000 and torch.equal(test.x, task.load("test", options, Path("/nonexistent")).x)


def test_sine_next_asks_for_the_next_sample(example: Path) -> None:
    task = Host().load_entry_points().tasks.get("sine_next")
    options = task.options({"length": 12})
    spec = task.resolve_spec(options)
    assert (spec.max_len, spec.output.n_predictions, spec.output.width, spec.output.objective.primary) == \
        (12, 1, 1, "mse")
    batch = task.sample(64, torch.Generator().manual_seed(0), options)
    x, y = batch.x[..., 0].double(), batch.y.double()
    assert batch.x.shape == (64, 12, 1) and batch.y.shape == (64,) and batch.y.dtype == torch.float32
    # a sampled sine obeys s[t+1] = 2 cos(f) s[t] - s[t-1]: fit cos(f) on the inputs, extrapolate one step
    cos_f = ((x[:, 2:] + x[:, :-2]) * x[:, 1:-1]).sum(1) / (2 * x[:, 1:-1].square().sum(1))
    assert torch.allclose(2 * cos_f * x[:, -1] - x[:, -2], y, atol=1e-4)


def test_the_regression_example_is_scored_and_ranked_by_mse(example: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.leaderboard.collect import build_table, load_results
    from fpt_bench.leaderboard.render import render

    flags = ["--task", "sine_next", "--backbone", "torch_transformer", "--backbone-args", TINY_TRANSFORMER]
    assert _run(tmp_path, *flags) == 0, capsys.readouterr().err
    result = _only_result(tmp_path)
    m = result.metrics
    assert result.status == "ok" and (m.metric, m.higher_is_better, m.percent) == ("mse", False, False)
    assert m.test_accuracy is None and m.test_score == m.test_metrics["mse"]
    assert set(m.test_metrics) == {"mse", "mae", "rmse"}
    assert m.test_metrics["rmse"] ** 2 == pytest.approx(m.test_metrics["mse"])
    assert m.objective["normalize"] is True and m.objective["target_std"] > 0
    assert result.provenance.components == {"task": "example:sine_next", "backbone": "example:torch_transformer",
                                            "policy": "policies:fpt"}
    loaded, refused = load_results([tmp_path])
    assert refused == []
    text = render(build_table(loaded), "github")
    assert "sine\\_next \\[v1, default, mse ↓\\]" in text and f"{m.test_score:.4g} (n=1)" in text


def test_torch_transformer_roles_layers_and_causality(example: Path) -> None:
    host = Host().load_entry_points()
    backbone = host.backbones.get("torch_transformer")
    module = backbone.build(backbone.options({"n_layers": 3, "d_model": 16, "n_head": 2, "causal": True}), 6)
    roles = module.parameter_roles()
    assert set(roles) == {n for n, _ in module.named_parameters()}
    counts: dict[Role, int] = {}
    for role in roles.values():
        counts[role] = counts.get(role, 0) + 1
    assert counts == {Role.POSITION: 1, Role.NORM: 14, Role.ATTENTION: 12, Role.FEEDFORWARD: 12}
    assert set(module.parameter_layers().values()) == {0, 1, 2}
    module.eval()
    x = torch.randn(1, 6, 16)
    later = x.clone()
    later[:, 4:] = torch.randn(1, 2, 16)
    with torch.no_grad():
        a, b = module(x), module(later)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5) and not torch.allclose(a[:, 4:], b[:, 4:])


def test_fpt_last_layers_trains_the_last_layers(example: Path) -> None:
    host = Host().load_entry_points()
    backbone = host.backbones.get("torch_transformer")
    task = host.tasks.get("sort_digits")
    model = FPTModel(task.spec, backbone.build(backbone.options({"n_layers": 3, "d_model": 16, "n_head": 2}), 16))
    policy = host.policies.get("fpt_last_layers")
    policy.apply(model, policy.options({"last": 2}))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "backbone.encoder.layers.0.self_attn.in_proj_weight" not in trained
    assert "backbone.encoder.layers.0.norm1.weight" in trained  # norms train (FPT)
    assert {"backbone.encoder.layers.1.self_attn.in_proj_weight", "backbone.encoder.layers.2.linear1.weight",
            "backbone.position.weight", "input.embed.weight", "output.weight"} <= trained


class FakeRun:
    def __init__(self, calls: list, **kwargs: object) -> None:  # type: ignore[type-arg]
        self.calls, self.summary = calls, {}
        calls.append(("init", kwargs))

    def log(self, metrics: dict, step: int) -> None:  # type: ignore[type-arg]
        self.calls.append(("log", step, sorted(metrics)))

    def finish(self) -> None:
        self.calls.append(("finish", dict(self.summary)))


def test_wandb_logger_logs_a_cell_offline(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    calls: list = []  # type: ignore[type-arg]
    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: FakeRun(calls, **kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert _run(tmp_path, "--task", "bit_xor", "--backbone-args", TINY_GPT2, "--log", "wandb=my-project") == 0
    result = _only_result(tmp_path)
    kind, init = calls[0]
    assert kind == "init" and init["project"] == "my-project" and init["mode"] == "offline"
    assert init["config"]["task"] == "bit_xor" and init["name"].startswith("bit_xor / gpt2")
    logged = ["train_loss", "val_accuracy", "val_exact_match"]  # bit_xor predicts 5 bits: exact match per example
    assert calls[1:3] == [("log", 2, logged), ("log", 4, logged)]
    assert calls[3][0] == "finish" and calls[3][1]["test_accuracy"] == result.metrics.test_accuracy
    assert calls[3][1]["status"] == "ok" and len(calls) == 4


def test_wandb_logger_without_wandb_warns_once_and_never_fails(
        example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench_example import wandb_logger

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    monkeypatch.setattr(wandb_logger, "_warned", [])
    cell = CellConfig(task="bit_xor", backbone="gpt2", policy="fpt", seed=0, profile="smoke",
                      hparams=TrainHParams(steps=2, batch_size=2, lr=1e-3, eval_every=1))
    wandb_logger.fpt_bench_cell_started(cell=cell)  # off: the variable is unset
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FPT_BENCH_LOG_WANDB", "p")
    for _ in range(2):
        wandb_logger.fpt_bench_cell_started(cell=cell)
        wandb_logger.fpt_bench_cell_evaluated(cell=cell, step=1, metrics={"val_accuracy": 0.5})
    assert capsys.readouterr().err.count("FPT_BENCH_LOG_WANDB is set but wandb is not installed") == 1
    assert wandb_logger._runs == {}
