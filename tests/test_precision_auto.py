"""precision=auto: the calibration picks the faster precision per mode from measured times, its cache is keyed per
machine and workload and survives corruption, forced precisions bypass it, and a cell records both precisions.

The timings are injected (a fake ``measure``); the real timer runs once on tiny shapes, for its structure only
(what it costs on real shapes is ``benchmarks/throughput.py --precision auto``'s to report)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import TINY, result_files, run_cli

from fpt_bench.api.model import FPTModel
from fpt_bench.host.manager import get_host
from fpt_bench.results.schema import CellResult
from fpt_bench.training import precision_auto as precision
from fpt_bench.training import precision_workload as pw

CPU = torch.device("cpu")


def tiny_model(policy: str = "fpt") -> FPTModel:
    host = get_host()
    spec = host.tasks.get("bit_xor").spec
    backbone = host.backbones.get("gpt2")
    model = FPTModel(spec, backbone.build(backbone.options(dict(kv.split("=") for kv in TINY.split(","))),
                                          spec.max_len))
    host.policies.get(policy).apply(model, host.policies.get(policy).options({}))
    return model


def measurement(train: tuple[float, float], eval_: tuple[float, float], rounds: int = 3) -> pw.Measurement:
    """Seconds (fp32, bf16) per mode, the same in every round."""
    best = {"train": {"fp32": train[0], "bf16": train[1]}, "eval": {"fp32": eval_[0], "bf16": eval_[1]}}
    per_round = {mode: {p: [t] * rounds for p, t in by.items()} for mode, by in best.items()}
    return pw.Measurement(best=best, per_round=per_round, seconds=0.5, scale=0.25)


class FakeTimer:
    """Stands in for ``precision_workload.measure``: returns the given measurement, counts its calls."""

    def __init__(self, result: pw.Measurement) -> None:
        self.result, self.calls, self.workloads = result, 0, []

    def __call__(self, work: pw.Workload, device: torch.device, budget: float) -> pw.Measurement:
        self.calls += 1
        self.workloads.append(work)
        assert 0 < budget <= pw.BUDGET_S
        return self.result


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU whose oneDNN has bf16 (whatever this machine has), so ``auto`` calibrates."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)


def choose(model: FPTModel, timer: FakeTimer | None, path: Path, **rows: int) -> precision.Choice:
    shape = {"micro_batch": 4, "eval_batch": 16, "seq_len": 10} | rows
    return precision.choose("auto", CPU, model, timer=timer, path=path, **shape)


# ---------------------------------------------------------------------------------------------- decide
@pytest.mark.parametrize(("train", "eval_", "expected"), [
    ((1.0, 0.6), (1.0, 0.5), ("bf16", "bf16")),  # bf16 is the fast path (AMX, AVX-512 bf16 that pays off)
    ((1.0, 1.4), (1.0, 1.3), ("fp32", "fp32")),  # bf16 loses (issue 20's Xeon: 0.68-0.79x fp32's speed)
    ((1.0, 70.0), (1.0, 65.0), ("fp32", "fp32")),  # emulated bf16 (AVX2 only: 1.4 GFLOP/s against ~100)
    ((1.0, 1.3), (1.0, 0.6), ("fp32", "bf16")),  # each mode where it wins
    ((1.0, 0.6), (1.0, 1.3), ("bf16", "fp32")),
    ((1.0, 0.97), (1.0, 0.95), ("fp32", "bf16")),  # bf16 must take at most 95 % of fp32's time; ties: fp32
])
def test_calibration_picks_the_faster_precision_per_mode(bf16_cpu, tmp_path: Path, train, eval_, expected,
                                                         capsys) -> None:
    timer = FakeTimer(measurement(train, eval_))
    choice = choose(tiny_model(), timer, tmp_path / "p.json")
    assert (choice.train, choice.eval) == expected
    assert choice.source == "measured" and timer.calls == 1
    assert choice.bf16_speedup_train == pytest.approx(train[0] / train[1])
    assert choice.bf16_speedup_eval == pytest.approx(eval_[0] / eval_[1])
    err = capsys.readouterr().err
    assert err.count("fpt-bench: precision auto:") == 1
    assert f"-> training {expected[0]}, evaluation {expected[1]}; cached in {tmp_path / 'p.json'}" in err


def test_rounds_that_disagree_are_used_but_not_cached(bf16_cpu, tmp_path: Path, capsys) -> None:
    noisy = measurement((1.0, 0.6), (1.0, 0.6))
    noisy.per_round["train"]["bf16"] = [0.6, 1.5, 0.6]  # one round saw bf16 lose: a busy machine
    timer = FakeTimer(noisy)
    first = choose(tiny_model(), timer, tmp_path / "p.json")
    assert (first.train, first.eval, first.cache) == ("bf16", "bf16", None)
    assert "not cached (its rounds disagreed): the next run measures again" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
    choose(tiny_model(), timer, tmp_path / "p.json")
    assert timer.calls == 2  # measured again


def test_a_calibration_on_a_busy_machine_is_not_cached(bf16_cpu, tmp_path: Path, capsys) -> None:
    import os

    busy = measurement((1.0, 0.6), (1.0, 0.6))
    busy.load = 2.1 * os.cpu_count()
    choice = choose(tiny_model(), FakeTimer(busy), tmp_path / "p.json")
    assert choice.cache is None and choice.load_average == busy.load and not (tmp_path / "p.json").exists()
    assert f"not cached (the machine was busy (load average {busy.load:.1f} on {os.cpu_count()} cores))" in \
        capsys.readouterr().err
    busy.load = 1.9 * os.cpu_count()
    assert choose(tiny_model(), FakeTimer(busy), tmp_path / "p.json").cache == str(tmp_path / "p.json")


# ----------------------------------------------------------------------------------------------- cache
def test_the_cache_is_reused_per_machine_and_workload(bf16_cpu, tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "cache" / "precision.json"
    timer = FakeTimer(measurement((1.0, 1.3), (1.0, 0.6)))
    model = tiny_model()
    first = choose(model, timer, path)
    assert path.exists() and timer.calls == 1
    capsys.readouterr()
    again = choose(tiny_model(), timer, path)  # another cell of the same workload on the same machine
    assert timer.calls == 1  # no second calibration
    assert again.source == "cache" and (again.train, again.eval) == ("fp32", "bf16") == (first.train, first.eval)
    assert again.bf16_speedup_eval == pytest.approx(1 / 0.6) and again.cache == str(path)
    assert capsys.readouterr().err == ""  # printed once, when first measured
    precision._ANNOUNCED.clear()  # another process: the cached choice is said once
    choose(tiny_model(), timer, path)
    choose(tiny_model(), timer, path)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fpt-bench: precision auto: training fp32, evaluation bf16 "
                                                  f"(cached in {path}: bf16 ran this backbone's products")
    data = json.loads(path.read_text())
    assert data["version"] == 1
    [(machine, entries)] = data["entries"].items()
    assert machine == precision.machine_key(CPU)
    assert f"| torch {torch.__version__} | {torch.get_num_threads()} threads" in machine
    [entry] = entries.values()
    assert (entry["train"], entry["eval"], entry["rounds"]) == ("fp32", "bf16", 3)
    assert entry["workload"].startswith("train [inputs]: 2x (40x32 @ 32x32)")

    choose(model, timer, path, eval_batch=32)  # another workload: measured
    assert timer.calls == 2
    monkeypatch.setattr(precision, "machine_key", lambda device: "cpu another [avx2] | torch x | 2 threads")
    choose(model, timer, path)  # another machine: measured, and kept beside the first machine's choices
    assert timer.calls == 3
    assert len(json.loads(path.read_text())["entries"]) == 2


@pytest.mark.parametrize("content", [b"{not json", b"", b"\x00\xff", b'{"version": 1, "entries": []}', b"[1, 2]",
                                     b'{"version": 1, "entries": {"M": {"K": {"train": "fp16"}}}}', b"MALFORMED"])
def test_a_corrupt_cache_is_ignored_and_rewritten(bf16_cpu, tmp_path: Path, content: bytes, capsys) -> None:
    path = tmp_path / "precision.json"
    if content == b"MALFORMED":  # this machine's entry for this workload, its numbers as strings
        choose(tiny_model(), FakeTimer(measurement((1.0, 0.5), (1.0, 0.5))), path)
        data = json.loads(path.read_text())
        for entry in data["entries"][precision.machine_key(CPU)].values():
            entry["bf16_speedup_train"] = "fast"
        content = json.dumps(data).encode()
    path.write_bytes(content)
    timer = FakeTimer(measurement((1.0, 0.5), (1.0, 0.5)))
    assert choose(tiny_model(), timer, path).train == "bf16"
    assert timer.calls == 1
    data = json.loads(path.read_text())  # rewritten whole
    assert [e["train"] for m in data["entries"].values() for e in m.values()][-1] == "bf16"
    assert choose(tiny_model(), timer, path).source == "cache"
    assert timer.calls == 1
    if b'"entries": {"' not in content:  # the others are valid JSON of the cache's shape
        assert f"ignoring the unreadable precision cache {path}" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_cache_that_is_not_a_small_regular_file_is_ignored_not_read(bf16_cpu, tmp_path: Path, kind: str,
                                                                      capsys) -> None:
    path = tmp_path / "precision.json"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer forever
    else:
        path.write_bytes(b" " * (2 << 20))  # past the 1 MiB bound (a link to /dev/zero never ends)
    timer = FakeTimer(measurement((1.0, 0.5), (1.0, 0.5)))
    assert choose(tiny_model(), timer, path).train == "bf16" and timer.calls == 1
    assert f"ignoring the unreadable precision cache {path}" in capsys.readouterr().err


def test_an_unwritable_cache_still_gives_a_choice(bf16_cpu, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    choice = choose(tiny_model(), FakeTimer(measurement((1.0, 0.5), (1.0, 2.0))), blocker / "precision.json")
    assert (choice.train, choice.eval, choice.cache) == ("bf16", "fp32", None)
    assert "not cached" in capsys.readouterr().err


def test_the_default_cache_lives_in_the_user_cache_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(precision.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert precision.cache_path() == tmp_path / "fpt-bench" / "precision.json"
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path / "mine.json"))
    assert precision.cache_path() == tmp_path / "mine.json"


# --------------------------------------------------------------------------------------- static cases
@pytest.mark.parametrize("forced", ["fp32", "bf16"])
def test_forced_precisions_bypass_the_calibration(bf16_cpu, tmp_path: Path, forced: str) -> None:
    timer = FakeTimer(measurement((1.0, 0.5), (1.0, 0.5)))
    choice = precision.choose(forced, CPU, tiny_model(), micro_batch=4, eval_batch=16, seq_len=10, timer=timer,
                              path=tmp_path / "p.json")
    assert (choice.train, choice.eval, choice.source) == (forced, forced, "forced")
    assert timer.calls == 0 and not (tmp_path / "p.json").exists()


def test_a_cpu_without_bf16_and_cuda_need_no_calibration(monkeypatch, tmp_path: Path) -> None:
    timer = FakeTimer(measurement((1.0, 0.5), (1.0, 0.5)))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    choice = choose(tiny_model(), timer, tmp_path / "p.json")
    assert (choice.train, choice.eval, choice.source) == ("fp32", "fp32", "no_bf16") and timer.calls == 0
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        choice = precision.static("auto", torch.device("cuda"))
        assert (choice.train, choice.eval, choice.source) == (expected, expected, "cuda")
    assert precision.static("auto", torch.device("meta")).train == "fp32"


# ------------------------------------------------------------------------------------------- workload
def test_the_workload_is_the_backbones_own_products() -> None:
    model = tiny_model()  # GPT-2, 2 layers x 32 wide (MLP 128)
    seen = pw.backbone_gemms(model.backbone, 32)
    assert seen == Counter({(5, 32, 96): 2, (5, 32, 32): 2, (5, 32, 128): 2, (5, 128, 32): 2})
    work = pw.workload(model, micro_batch=4, eval_batch=200, seq_len=10)
    assert [(g.rows, g.k, g.n, g.count) for g in work.train] == [
        (40, 32, 32, 2), (40, 32, 96, 2), (40, 32, 128, 2), (40, 128, 32, 2)]
    assert {g.rows for g in work.eval} == {pw.ROW_CAP}  # 200 x 10 rows, capped
    assert model.backbone.training  # the probe restores the module's mode


def test_per_token_products_scale_by_steps_not_rows() -> None:
    # an LSTM-like probe: one product over all 5 tokens (input projection) and 5 per-step products of 1 row
    seen = Counter({(5, 16, 64): 1, (1, 16, 64): 5})
    gemms = pw._scale(seen, batch=8, seq_len=30)
    assert [(g.rows, g.k, g.n, g.count) for g in gemms] == [(8, 16, 64, 30), (240, 16, 64, 1)]


@pytest.mark.parametrize(("policy", "backward"), [("fpt", "inputs"), ("output_only", "none"),
                                                  ("full", "inputs+weights")])
def test_the_training_backward_follows_the_freeze_policy(policy: str, backward: str) -> None:
    assert pw.training_backward(tiny_model(policy)) == backward


def test_the_real_timer_runs_on_tiny_shapes_and_leaves_the_random_state_alone(bf16_cpu, tmp_path: Path) -> None:
    model = tiny_model()
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    choice = choose(model, None, tmp_path / "p.json")  # the real measure (on one thread)
    assert torch.equal(torch.get_rng_state(), state)  # a warm or cold cache gives a cell the same numbers
    assert torch.get_num_threads() == threads  # restored
    assert choice.source == "measured" and choice.train in ("fp32", "bf16") and choice.eval in ("fp32", "bf16")
    assert pw.MIN_ROUNDS <= choice.rounds <= pw.MAX_ROUNDS
    assert choice.bf16_speedup_train > 0 and choice.bf16_speedup_eval > 0 and 0 < choice.row_scale <= 1


# ---------------------------------------------------------------------------------------- in a cell
def test_a_cell_trains_and_evaluates_in_the_chosen_precisions_and_records_both(bf16_cpu, tmp_path: Path,
                                                                              monkeypatch) -> None:
    import fpt_bench.training.inference
    import fpt_bench.training.loop
    import fpt_bench.training.precision

    used: list[str] = []
    real_autocast = fpt_bench.training.precision.autocast

    def spy(device, chosen):
        used.append(chosen)
        return real_autocast(device, chosen)

    for module in (fpt_bench.training.loop, fpt_bench.training.inference):  # training steps, evaluation passes
        monkeypatch.setattr(module, "autocast", spy)
    timer = FakeTimer(measurement((1.0, 0.5), (1.0, 1.5)))  # bf16 wins training, loses evaluation
    monkeypatch.setattr(precision, "measure", timer)
    base = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--device", "cpu",
            "--no-progress", "--steps", "2", "--eval-every", "2", "--precision", "auto"]
    assert run_cli(*base, "--output-dir", str(tmp_path / "a"))[0] == 0
    [path] = result_files(tmp_path / "a")
    result = CellResult.model_validate_json(path.read_text())
    prov = result.provenance
    assert (prov.precision, prov.eval_precision) == ("bf16", "fp32")
    assert (prov.speed.autocast, prov.speed.autocast_eval) == ("bf16", None)
    assert prov.precision_auto.source == "measured" and prov.precision_auto.bf16_speedup_train == pytest.approx(2)
    assert result.cell.hparams["precision"] == "auto"  # the config (and its hash) is unchanged
    assert result.timing.peak_dtype == "bfloat16"  # MFU against the training precision's peak
    assert used.count("bf16") == 2 and set(used) == {"bf16", "fp32"}  # two steps in bf16, evaluations in fp32
    assert timer.calls == 1
    # the next cell reads the cache
    assert run_cli(*base, "--seeds", "1", "--output-dir", str(tmp_path / "b"))[0] == 0
    [path] = result_files(tmp_path / "b")
    again = CellResult.model_validate_json(path.read_text()).provenance
    assert again.precision_auto.source == "cache" and timer.calls == 1
    assert (again.precision, again.eval_precision) == ("bf16", "fp32")
    # a forced precision records itself, and no auto record
    assert run_cli(*base[:-1], "fp32", "--output-dir", str(tmp_path / "c"))[0] == 0
    [path] = result_files(tmp_path / "c")
    forced = CellResult.model_validate_json(path.read_text()).provenance
    assert (forced.precision, forced.eval_precision, forced.precision_auto) == ("fp32", "fp32", None)


def test_results_written_before_the_eval_precision_still_validate() -> None:
    committed = sorted(Path(__file__).resolve().parents[1].glob("leaderboard/**/*.json"))
    results = [p for p in committed if '"schema_version"' in p.read_text()[:200]]
    assert results, "no committed results found"
    for path in results:
        prov = CellResult.model_validate_json(path.read_text()).provenance
        assert prov.eval_precision is None and prov.precision_auto is None
