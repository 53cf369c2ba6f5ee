# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""Built-in loggers (fpt_bench_plugins/loggers.py): `run --log jsonl=... --log csv=... --log tensorboard=...` write
every event of a cell; TensorBoard is optional and skipped cleanly when it is not installed."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from plugin_helpers import TINY_GPT2, plugin_site  # noqa: F401 - fixtures

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.cli import main
from fpt_bench.results.store import iter_results
from fpt_bench_plugins import loggers

RUN = ["run", "--task", "bit_xor", "--backbone-args", TINY_GPT2, "--profile", "smoke", "--device", "cpu",
       "--steps", "4", "--eval-every", "2", "--no-progress"]


class FakeWriter:
    made: list[FakeWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.texts, self.closed = log_dir, [], [], False
        FakeWriter.made.append(self)

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.append((name, step, value))

    def add_text(self, name: str, text: str) -> None:
        self.texts.append((name, text))

    def close(self) -> None:
        self.closed = True


def test_jsonl_csv_and_tensorboard_log_every_event(plugin_site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    FakeWriter.made = []
    monkeypatch.setattr(loggers, "_writer_class", lambda: FakeWriter)
    jsonl, table, board = tmp_path / "logs" / "events.jsonl", tmp_path / "events.csv", tmp_path / "tb"
    assert main([*RUN, "--output-dir", str(tmp_path / "results"), "--log", f"jsonl={jsonl}",
                 "--log", f"csv={table}", "--log", f"tensorboard={board}"]) == 0
    [(path, result)] = list(iter_results(tmp_path / "results"))
    config_hash = result.provenance.config_hash

    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(e["event"], e.get("step")) for e in events] == [
        ("cell_started", None), ("cell_evaluated", 2), ("cell_evaluated", 4), ("cell_finished", 4)]
    assert {e["cell"] for e in events} == {config_hash}
    assert events[0]["result_path"] == str(path) and events[0]["config"]["hparams"]["steps"] == 4
    curve = result.metrics.curve
    assert [e["val_accuracy"] for e in events[1:3]] == [curve[0].val_accuracy, curve[1].val_accuracy]
    assert [e["train_loss"] for e in events[1:3]] == [curve[0].train_loss, curve[1].train_loss]
    assert events[3]["status"] == "ok" and events[3]["test_accuracy"] == result.metrics.test_accuracy
    assert events[3]["test_exact_match"] == result.metrics.test_metrics["exact_match"]  # every metric of the task

    rows = list(csv.DictReader(table.open()))
    assert list(rows[0]) == loggers.CSV_COLUMNS
    assert [(r["event"], r["step"], r["task"], r["seed"]) for r in rows] == [
        ("cell_started", "", "bit_xor", "0"), ("cell_evaluated", "2", "bit_xor", "0"),
        ("cell_evaluated", "4", "bit_xor", "0"), ("cell_finished", "4", "bit_xor", "0")]
    assert float(rows[3]["test_accuracy"]) == result.metrics.test_accuracy

    [writer] = FakeWriter.made
    assert Path(writer.log_dir) == board / "bit_xor" / "gpt2__fpt" / f"smoke-seed0-{config_hash}"
    assert [(n, s) for n, s, _ in writer.scalars] == [
        ("val_accuracy", 2), ("val_exact_match", 2), ("train_loss", 2), ("val_accuracy", 4), ("val_exact_match", 4),
        ("train_loss", 4), ("test_accuracy", 4), ("test_exact_match", 4)]  # bit_xor: 5 bits, each and all right
    assert writer.closed and loggers._writers == {}


def test_loggers_are_off_without_their_variable(plugin_site, tmp_path: Path, capsys) -> None:
    cell = CellConfig(task="bit_xor", backbone="gpt2", policy="fpt", seed=3, profile="smoke",
                      hparams=TrainHParams(steps=2, batch_size=2, lr=1e-3, eval_every=1))
    loggers.fpt_bench_cell_started(cell=cell, result_path=tmp_path / "r.json")
    loggers.fpt_bench_cell_evaluated(cell=cell, step=1, metrics={"val_accuracy": 0.5})
    assert list(tmp_path.iterdir()) == [] and loggers._writers == {}
    assert capsys.readouterr().err == ""


def test_tensorboard_missing_warns_once_and_the_run_goes_on(plugin_site, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def missing():  # type: ignore[no-untyped-def]
        raise ImportError("No module named 'tensorboard'")

    monkeypatch.setattr(loggers, "_writer_class", missing)
    monkeypatch.setattr(loggers, "_warned", set())
    monkeypatch.setenv("FPT_BENCH_LOG_TENSORBOARD", str(tmp_path / "tb"))
    cell = CellConfig(task="bit_xor", backbone="gpt2", policy="fpt", seed=3, profile="smoke",
                      hparams=TrainHParams(steps=2, batch_size=2, lr=1e-3, eval_every=1))
    for step in (1, 2):
        loggers.fpt_bench_cell_evaluated(cell=cell, step=step, metrics={"val_accuracy": 0.5})
    err = capsys.readouterr().err
    assert err.count("asks for TensorBoard, which is not importable") == 1
    assert "pip install 'fpt-bench[tensorboard]'" in err
    assert not (tmp_path / "tb").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed "
                    "(optional extra fpt-bench[tensorboard])")
def test_real_tensorboard_writes_event_files(plugin_site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPT_BENCH_LOG_TENSORBOARD", str(tmp_path))
    cell = CellConfig(task="bit_xor", backbone="gpt2", policy="fpt", seed=0, profile="smoke",
                      hparams=TrainHParams(steps=2, batch_size=2, lr=1e-3, eval_every=1))
    loggers.fpt_bench_cell_evaluated(cell=cell, step=1, metrics={"val_accuracy": 0.5})
    loggers._writers[cell.config_hash()].close()
    loggers._writers.clear()
    assert list(tmp_path.rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("flag", ["jsonl", "=x", "json l=x", "jsonl="])
def test_bad_log_flag_is_a_usage_error(flag: str, plugin_site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*RUN, "--log", flag]) == 2
    assert "expected KIND=TARGET" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_log_target_that_is_not_a_file_is_said_once_and_never_waits(tmp_path: Path, kind: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import os

    target = tmp_path / "events"
    if kind == "fifo":
        os.mkfifo(target)  # opening it for writing would wait for a reader forever
    else:
        target.mkdir()
    loggers._broken.clear()
    for _ in range(3):
        loggers._append(str(target), "{}\n")
    err = capsys.readouterr().err
    assert err.count(f"fpt-bench: cannot log to {target}") == 1 and "not logging there for the rest" in err
