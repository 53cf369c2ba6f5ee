"""``fpt-bench verify`` (issue 18, "results that prove themselves") and the thread count (class 13).

verify reruns a result's cell from its recorded config and compares every number: a fresh smoke cell matches
bit for bit; a consistent forgery (which passes every check of ``leaderboard --add``) is caught; a result it
cannot rerun (a plugin that is not installed, another task version, not a result) is exit code 2 with the reason;
a result from a GPU is held to the stated tolerance. Its records mark the published leaderboard, and only for
the exact result they verified.

The thread count: results and checkpoints record it, a cell resumed under another thread count finishes on the
checkpoint's (bit-identical to a run never interrupted), and verify reruns at the recorded count.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from reliability_support import tally

from fpt_bench.leaderboard.validate import cell_config, check_result_file
from fpt_bench.leaderboard.verification import read_record, record_path
from fpt_bench.results.schema import CellResult

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
RUN = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--device", "cpu",
       "--task-args", "n_val=32,n_test=32", "--no-progress"]


@pytest.fixture
def threads() -> object:
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _run(out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    code, _, err = run_cli(*RUN, "--output-dir", str(out), *extra, capsys=capsys)
    assert code == 0, err
    (result,) = sorted(out.rglob("*.json"))
    return result


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly run smoke cell (on two threads), shared by the tests that only read it."""
    from fpt_bench.cli import main

    out = tmp_path_factory.mktemp("fresh")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main([*RUN, "--output-dir", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    return next(out.rglob("*.json"))


def _copy(result: Path, folder: Path, edit=None) -> Path:  # type: ignore[no-untyped-def]
    """A copy of ``result`` in ``folder`` (its canonical path), with ``edit(data)`` applied, hash kept valid."""
    data = json.loads(result.read_text())
    if edit is not None:
        edit(data)
        data["provenance"]["config_hash"] = cell_config(CellResult.model_validate(data)).config_hash()
    target = folder / result.name
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2))
    return target


def _verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli("verify", *args, capsys=capsys)


# ------------------------------------------------------------------------------------------------ match
def test_a_fresh_smoke_cell_matches_bit_for_bit(fresh: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    result = _copy(fresh, tmp_path / "r")
    code, out, err = _verify(capsys, str(result))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith(f"match          {result}: ") and "bit for bit (cpu, 2 thread(s)" in lines[0]
    assert lines[-1] == "verified 1 result(s): 1 match, 0 differ, 0 could not be verified"
    record = read_record(result, check_result_file(result))
    assert record is not None and record.outcome == "match" and record.rerun.threads == 2
    assert record.compared == "bit for bit" and record.differences == []
    # published from the publisher's own folder: the cell carries the mark
    code, _, err = run_cli("leaderboard", str(tmp_path / "r"), "--publish", str(tmp_path / "site"), capsys=capsys)
    assert code == 0, err
    page = (tmp_path / "site" / "LEADERBOARD.md").read_text()
    accuracy = 100 * check_result_file(result).metrics.test_accuracy
    assert f"{accuracy:.1f} (n=1) · verified 1/1" in page and "ok; verified 1/1" in page
    assert "verified 1/1" in (tmp_path / "site" / "index.html").read_text()
    # a file from elsewhere (--add) arrives without its record: anyone can write one, so it proves nothing
    code, _, err = run_cli("leaderboard", "--add", str(result), "--publish", str(tmp_path / "other"), capsys=capsys)
    assert code == 0, err
    assert "verified" not in (tmp_path / "other" / "LEADERBOARD.md").read_text().split("Each column header")[1]
    assert _verify(capsys, str(tmp_path / "other" / "results"))[0] == 0  # verified here, the mark is earned
    assert run_cli("leaderboard", "--publish", str(tmp_path / "other"), capsys=capsys)[0] == 0
    assert "verified 1/1" in (tmp_path / "other" / "LEADERBOARD.md").read_text()
    tally("verify", "reruns that matched bit for bit", 1)


# ---------------------------------------------------------------------------------------------- forgeries
def _forge_test_accuracy(data: dict) -> None:
    m = data["metrics"]
    m["test_accuracy"] = m["test_accuracy_final"] = 0.99  # consistent: --add's checks accept it


def _forge_last_loss(data: dict) -> None:
    m = data["metrics"]
    m["curve"][-1]["train_loss"] = m["train_loss"] = m["train_loss"] * 0.5


@pytest.mark.parametrize(("forgery", "differing"), [
    (_forge_test_accuracy, ["test_accuracy: 0.99 recorded", "test_accuracy_final: 0.99 recorded"]),
    (_forge_last_loss, ["train_loss:", "curve[1].train_loss:"]),
])
def test_a_consistent_forgery_is_caught_by_the_rerun(fresh: Path, tmp_path: Path, forgery, differing: list[str],  # type: ignore[no-untyped-def]
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    forged = _copy(fresh, tmp_path / "r", forgery)
    check_result_file(forged)  # every documented relation holds: only a rerun can tell
    code, out, _ = _verify(capsys, str(forged))
    assert code == 1, out
    assert out.startswith(f"DIFFERS        {forged}: {len(differing)} of ")
    shown = [line.strip() for line in out.splitlines()[1:1 + len(differing)]]
    assert all(any(line.startswith(d) for line in shown) for d in differing), shown
    record = read_record(forged, check_result_file(forged))
    assert record is not None and record.outcome == "differs" and len(record.differences) == len(differing)
    code, _, _ = run_cli("leaderboard", str(tmp_path / "r"), "--publish", str(tmp_path / "site"), capsys=capsys)
    assert code == 0
    assert "rerun differs 1/1" in (tmp_path / "site" / "LEADERBOARD.md").read_text()
    tally("verify", "consistent forgeries caught by the rerun", 1)


def test_a_record_applies_only_to_the_result_it_verified(fresh: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    result = _copy(fresh, tmp_path / "r")
    assert _verify(capsys, str(result))[0] == 0
    saved = record_path(result).read_text()
    forged = _copy(result, tmp_path / "r", _forge_test_accuracy)  # edited after it was verified
    assert forged == result and record_path(result).read_text() == saved
    assert read_record(result, check_result_file(result)) is None  # the record no longer applies
    code, _, _ = run_cli("leaderboard", str(tmp_path / "r"), "--publish", str(tmp_path / "site"), capsys=capsys)
    assert code == 0
    page = (tmp_path / "site" / "LEADERBOARD.md").read_text()
    assert "verified" not in page.split("Each column header")[1] and "99.0" in page
    assert not record_path(tmp_path / "site" / "results" / result.relative_to(tmp_path / "r")).exists()
    record_path(result).write_text("{not a record")  # garbage next to a result verifies nothing either
    assert read_record(result, check_result_file(result)) is None


# ------------------------------------------------------------------------------------- cannot verify (2)
def test_what_cannot_be_rerun_is_exit_code_2_with_the_reason(fresh: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    def other_plugin(data: dict) -> None:
        data["cell"]["task"] = "parity"  # a task of a plugin that is not installed here
        data["provenance"]["plugins"]["parity"] = "0.3.1"

    def other_version(data: dict) -> None:
        data["cell"]["task_version"] = "7"

    cases = {
        "plugin": (_copy(fresh, tmp_path / "a", other_plugin),
                   ["unknown task 'parity'", "parity 0.3.1", "Install the plugin that provides it"]),
        "version": (_copy(fresh, tmp_path / "b", other_version), ["is version 1 here", "version 7"]),
        "not a result": (tmp_path / "c" / "x.json", ["not a readable result file"]),
    }
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.json").write_text("[1, 2")
    for name, (path, reasons) in cases.items():
        code, out, err = _verify(capsys, str(path))
        assert code == 2, (name, out, err)
        assert "Traceback" not in err
        first = out.splitlines()[0]
        assert first.startswith(f"cannot verify  {path}: "), first
        assert all(r in first for r in reasons), (name, first)
        assert not record_path(path).exists()
        tally("verify", "results refused with the reason (exit 2)", 1)
    code, out, err = _verify(capsys, str(cases["plugin"][0]), str(fresh))  # one unverifiable among good ones: 2
    assert code == 2 and "1 match, 0 differ, 1 could not be verified" in out
    code, _, err = _verify(capsys, str(tmp_path / "nowhere.json"))
    assert code == 2 and "no such result file or folder" in err


# ------------------------------------------------------------------------------------ from another device
@pytest.mark.parametrize(("shift", "code"), [(0.01, 0), (0.05, 1)])
def test_a_gpu_result_is_held_to_the_stated_tolerance(fresh: Path, tmp_path: Path, shift: float, code: int,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.cells.rerun import ACCURACY_TOLERANCE

    def on_a_gpu(data: dict) -> None:
        data["provenance"]["device"] = "cuda:0 (NVIDIA H200)"
        data["provenance"]["threads"] = None
        m = data["metrics"]
        m["test_accuracy"] += shift
        m["test_accuracy_final"] += shift

    result = _copy(fresh, tmp_path / "r", on_a_gpu)
    got, out, _ = _verify(capsys, str(result))
    assert got == code, out
    assert f"within {ACCURACY_TOLERANCE} absolute on accuracies" in out and "computed on cuda:0" in out
    if code == 0:  # a match within a tolerance the result itself chose (by its device) is not shown as verified
        assert run_cli("leaderboard", str(tmp_path / "r"), "--publish", str(tmp_path / "site"), capsys=capsys)[0] == 0
        assert "verified" not in (tmp_path / "site" / "LEADERBOARD.md").read_text().split("Each column header")[1]
    tally("verify", "results from another device held to the tolerance", 1)


# ----------------------------------------------------------------------------------- the thread count (13)
def test_the_thread_count_is_recorded_and_a_resume_keeps_it(tmp_path: Path, threads, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import fpt_bench.training.loop as loop

    # width 64 and a loss per step: on two cores the thread count shows in the losses of several steps
    extra = ("--checkpoint-every", "5", "--eval-every", "1", "--backbone-args", "weights=random,n_layers=1,n_embd=64,"
             "n_head=2")
    threads(2)
    two = json.loads(_run(tmp_path / "two", capsys, *extra).read_text())
    threads(1)
    one = json.loads(_run(tmp_path / "one", capsys, *extra).read_text())
    assert (two["provenance"]["threads"], one["provenance"]["threads"]) == (2, 1)
    assert two["provenance"]["device"].endswith(", 2 threads)")
    assert two["metrics"]["curve"] != one["metrics"]["curve"]  # why the count matters (losses differ by ~1e-7)

    threads(2)  # a run started on two threads, interrupted (Ctrl-C at its 12th step)...
    real, calls = loop.loss_fn, [0]

    def interrupted(*args: object) -> object:
        calls[0] += 1
        if calls[0] == 12:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(loop, "loss_fn", interrupted)
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path / "mixed"), *extra, capsys=capsys)
    assert code == 130 and "interrupted" in err
    monkeypatch.setattr(loop, "loss_fn", real)
    threads(1)  # ... resumed where each process gets one thread (--workers 2 on two cores)
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path / "mixed"), *extra, capsys=capsys)
    assert code == 0 and "on 2 CPU thread(s), as it was started (this process has 1)" in err, err
    resumed = json.loads(next((tmp_path / "mixed").rglob("*.json")).read_text())
    assert resumed["timing"]["resumed_from_step"] == 10 and torch.get_num_threads() == 1  # set back after the cell
    assert resumed["provenance"]["threads"] == 2
    assert resumed["metrics"] == two["metrics"]  # bit-identical to the run never interrupted, not a mix
    tally("verify", "resumes under another thread count, bit-identical", 1)


def test_verify_reruns_at_the_recorded_thread_count(tmp_path: Path, threads,  # type: ignore[no-untyped-def]
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    threads(1)
    result = _run(tmp_path / "r", capsys)
    threads(2)  # verify runs where the default is two threads: it reruns on the recorded one
    code, out, _ = _verify(capsys, str(result))
    assert code == 0 and "bit for bit (cpu, 1 thread(s)" in out, out
    assert torch.get_num_threads() == 2


def test_an_older_result_states_its_threads_in_the_device(fresh: Path) -> None:
    from fpt_bench.cells.rerun import recorded_threads

    result = check_result_file(fresh)
    assert recorded_threads(result) == 2
    older = result.model_copy(update={"provenance": result.provenance.model_copy(
        update={"threads": None, "device": "cpu (x86_64, 7 threads)"})})
    assert recorded_threads(older) == 7
    gpu = older.model_copy(update={"provenance": older.provenance.model_copy(update={"device": "cuda:0 (A100)"})})
    assert recorded_threads(gpu) is None


def test_published_results_still_validate() -> None:
    """Every committed result (written before provenance.threads existed) still reads and validates."""
    repo = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
    files = sorted(repo.rglob("*.json"))
    assert files
    for f in files:
        assert check_result_file(f).provenance.threads is None
