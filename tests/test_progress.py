"""Progress a person can trust: per cell step, loss, steps/s and an ETA that includes evaluation (a tqdm bar on a
terminal, a plain line at a steady interval otherwise); per sweep an ETA from a cost model and measured rates."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.cells.estimate import DEFAULT_SPLIT, SweepClock, cell_cost
from fpt_bench.infra import progress as progress_module
from fpt_bench.infra.progress import Progress, clock


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_a_steady_interval_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(progress_module.time, "perf_counter", fake)
    stream = io.StringIO()  # not a terminal
    p = Progress("listops", stream=stream, interval=30.0)
    p.start(total=100)
    for step in range(1, 101):
        fake.now += 1.0  # one step per second
        p.update(step, loss=2.0 - step / 100, val=0.2 if step >= 50 else None, eval_seconds_left=40.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # at 30 s, 60 s, 90 s and the last step: never silent for long, never chatty
    assert lines[0] == "listops: step 30/100, loss 1.7000, 1.00 steps/s, ETA 1m50s (with evaluation)"
    assert lines[1] == "listops: step 60/100, loss 1.4000, val 0.200, 1.00 steps/s, ETA 1m20s (with evaluation)"
    assert lines[-1].startswith("listops: step 100/100, loss 1.0000, val 0.200")


def test_a_bar_on_a_terminal_shows_the_eta_with_evaluation() -> None:
    stream = io.StringIO()
    p = Progress("bit_xor", stream=stream, enabled=True)  # a bar even off a terminal
    p.start(total=10)
    for step in range(1, 11):
        p.update(step, loss=0.5, val=0.75, eval_seconds_left=125.0)
    p.close()
    text = stream.getvalue()
    assert "10/10" in text and "loss=0.5000" in text and "val=0.750" in text and "eta=2m05s" in text


def test_worker_processes_print_plain_lines_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("FPT_BENCH_PROGRESS", "lines")  # what the local executor's workers set
    stream = Terminal()
    p = Progress("bit_xor", stream=stream, interval=0.0)
    p.start(total=2)
    p.update(1, loss=0.5)
    p.update(2, loss=0.4)
    assert not p.bar_mode
    assert stream.getvalue().splitlines()[0].startswith("bit_xor: step 1/2, loss 0.5000")


def test_disabled_progress_prints_nothing() -> None:
    stream = io.StringIO()
    p = Progress("x", stream=stream, enabled=False, interval=0.0)
    p.start(total=3)
    p.update(3, loss=1.0)
    assert stream.getvalue() == "" and p.last["step"] == 3


def test_clock() -> None:
    assert [clock(s) for s in (0, 9.6, 65, 3725)] == ["0s", "10s", "1m05s", "1h02m"]


def test_the_trainer_counts_the_evaluations_still_to_come() -> None:
    from fpt_bench.training.loop import Trainer

    hp = SimpleNamespace(steps=25, eval_every=10)
    trainer: Any = SimpleNamespace(hp=hp, val=[0] * 100, tests={"a": [0] * 300, "b": [0] * 100},
                                   out=SimpleNamespace(eval_samples=200, eval_seconds=4.0, train_samples=0,
                                                       train_seconds=0.0))
    left = Trainer._eval_seconds_left
    # after step 5: validations at 10, 20 and 25 (the last step), then the two test splits; 0.02 s per example
    assert left(trainer, 5) == pytest.approx((3 * 100 + 400) * 0.02)
    assert left(trainer, 20) == pytest.approx((1 * 100 + 400) * 0.02)
    assert left(trainer, 25) == pytest.approx(400 * 0.02)
    trainer.out = SimpleNamespace(eval_samples=0, eval_seconds=0.0, train_samples=30, train_seconds=9.0)
    assert left(trainer, 5) == pytest.approx(700 * 0.1)  # before any evaluation: a third of a training example


def _cell(task: str, seed: int, steps: int = 100, n_layers: int = 2) -> CellConfig:
    hp = TrainHParams(steps=steps, batch_size=4, lr=1e-3, eval_every=50, val_examples=100, test_examples=200)
    return CellConfig(task=task, backbone="gpt2", backbone_args={"n_layers": n_layers}, policy="fpt", seed=seed,
                      profile="quick", hparams=hp)


def _result(wall: float, train: float, evaluation: float, params: int, status: str = "ok", samples: float = 0.0,
            tokens: float = 0.0) -> Any:
    timing = SimpleNamespace(steps=100, wall_seconds=wall, train_seconds=train, eval_seconds=evaluation,
                             samples_per_second=samples, tokens_per_second=tokens)
    return SimpleNamespace(status=status, timing=timing, parameters=SimpleNamespace(total=params))


def test_cell_cost_counts_token_passes() -> None:
    spec = SimpleNamespace(max_len=10, test_splits=["test"])
    assert cell_cost(_cell("t", 0), spec) == 10 * (3 * 100 * 4 + 2 * 100 + 200)  # type: ignore[arg-type]
    hp = TrainHParams(steps=30, batch_size=2, lr=1e-3, eval_every=20)
    cell = CellConfig(task="t", backbone="b", policy="p", seed=0, profile="paper", hparams=hp)
    two = SimpleNamespace(max_len=5, test_splits=["a", "b"])
    assert cell_cost(cell, two) == 5 * (3 * 30 * 2 + 2 * DEFAULT_SPLIT + 2 * DEFAULT_SPLIT)  # type: ignore[arg-type]


def test_the_sweep_eta_weighs_each_cell_by_its_cost() -> None:
    short, long = _cell("short", 0), _cell("long", 0, steps=1000)
    others = [_cell("short", 1), _cell("long", 1, steps=1000), _cell("long", 2, steps=1000)]
    costs = {c.config_hash(): (1000.0 if c.task == "short" else 10_000.0) for c in [short, long, *others]}
    sweep = SweepClock(costs)
    assert sweep.eta(others) is None  # nothing measured yet: no guess from nothing
    sweep.finished(short, _result(wall=12.0, train=8.0, evaluation=2.0, params=1000))
    # the FLOPs model: the long cells do 10x the token passes of the measured short one at the same parameters
    assert sweep.eta(others) == pytest.approx(10.0 + 2 * 100.0 + 3 * 2.0)
    sweep.finished(long, _result(wall=52.0, train=40.0, evaluation=10.0, params=1000))
    # a measured configuration: its cells take what it took (the short one too), plus the median overhead
    assert sweep.eta(others) == pytest.approx(10.0 + 2 * 50.0 + 3 * 2.0)
    sweep.finished(_cell("short", 1), _result(wall=0.1, train=0.0, evaluation=0.0, params=1000, status="failed"))
    assert sweep.eta(others) == pytest.approx(10.0 + 2 * 50.0 + 3 * 2.0)  # a failed cell did no work: ignored


def test_the_sweep_eta_uses_the_length_a_task_measured() -> None:
    """A task's maximum length prices its cells until one has run; then the mean length its examples had (a smoke
    ListOps expression is 20-100 tokens of ListOps' 2,000)."""
    first, later = _cell("listops", 0), _cell("listops", 1)
    bits = _cell("bits", 0)
    cells = (first, later, bits)
    sweep = SweepClock({c.config_hash(): 2000.0 for c in cells}, {c.config_hash(): 2000 for c in cells})
    assert sweep.cost(later) == 2000.0
    sweep.finished(first, _result(wall=11.0, train=8.0, evaluation=2.0, params=1000, samples=10.0, tokens=500.0))
    assert sweep.cost(later) == pytest.approx(50.0) and sweep.cost(bits) == 2000.0  # 50 tokens an example
    assert sweep.eta([later]) == pytest.approx(10.0 + 1.0)  # what the first took: the same work, plus overhead


def test_a_run_with_stdout_not_a_terminal_logs_progress_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from fpt_bench.cli import main

    monkeypatch.setattr(progress_module, "LOG_EVERY", 0.0)
    monkeypatch.setattr(Progress.__init__, "__defaults__", (None, None, 0.0))
    code = main(["run", "--task", "bit_xor", "--backbone-args", "weights=random,n_layers=1,n_embd=16,n_head=2",
                 "--profile", "smoke", "--steps", "4", "--eval-every", "2", "--device", "cpu",
                 "--output-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("bit_xor: step ")]
    assert [line.split(",")[0] for line in lines] == [f"bit_xor: step {s}/4" for s in (1, 2, 3, 4)]
    assert all("steps/s" in line and "ETA" in line for line in lines)
    assert "[1/1, " in out and "ETA" in out


def test_the_sweep_prices_a_cell_with_the_options_its_profile_gives_its_task() -> None:
    """A smoke ListOps cell reads the small set (profile_options), whose expressions are at most 100 tokens."""
    from fpt_bench.cells.sweep import _spec
    from fpt_bench.host.manager import get_host

    hp = TrainHParams(steps=10, batch_size=2, lr=1e-3, eval_every=5, val_examples=8, test_examples=8)
    cell = CellConfig(task="listops", backbone="gpt2", policy="fpt", seed=0, profile="smoke", hparams=hp)
    assert _spec(SimpleNamespace(host=get_host()), cell).max_len == 100  # type: ignore[arg-type]
    assert _spec(SimpleNamespace(host=get_host()), cell.model_copy(update={"profile": "quick"})).max_len == 2000  # type: ignore[arg-type]
