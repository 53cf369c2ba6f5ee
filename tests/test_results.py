"""Result files: deterministic paths, atomic writes, validation, skip rules and the committed JSON Schema."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import CorruptFileError
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.results.export import result_schema_json
from fpt_bench.results.schema import CellResult
from fpt_bench.results.store import read_result, result_path, should_run, write_result

REPO = Path(__file__).resolve().parents[1]


def cell(**changes) -> CellConfig:
    base = dict(task="bit_xor", backbone="gpt2", backbone_args={"weights": "random"}, policy="fpt", seed=0,
                profile="smoke", hparams=TrainHParams(steps=2, batch_size=2, lr=1e-3, eval_every=1))
    base.update(changes)
    return CellConfig(**base)


def sample_result(status: str = "ok") -> CellResult:
    return CellResult.model_validate({
        "cell": {"task": "bit_xor", "task_version": "1", "backbone": "gpt2", "policy": "fpt", "seed": 0,
                 "profile": "smoke", "hparams": {}},
        "status": status,
        "metrics": {"test_accuracy": 0.5, "test_accuracy_final": 0.5, "val_accuracy": 0.5,
                    "val_accuracy_final": 0.5, "best_step": 1, "train_loss": 0.7},
        "parameters": None,
        "timing": {"wall_seconds": 1, "train_seconds": 1, "eval_seconds": 0, "steps": 1, "steps_per_second": 1,
                   "samples_per_second": 1, "tokens_per_second": 1},
        "provenance": {"harness_version": "0", "plugins": {}, "python": "3", "torch": "2", "transformers": None,
                       "platform": "x", "git_hash": None, "device": "cpu", "precision": "fp32",
                       "config_hash": "abc", "seeds": {}, "created_at": "2026-01-01T00:00:00+00:00"},
    })


def test_result_path_is_deterministic_and_config_sensitive(tmp_path: Path) -> None:
    a = result_path(tmp_path, cell())
    assert a == result_path(tmp_path, cell())
    assert a.parent == tmp_path / "bit_xor" / "gpt2__fpt"
    assert a.name.startswith("smoke-seed0-") and a.suffix == ".json"
    assert result_path(tmp_path, cell(backbone_args={"weights": "pretrained"})) != a
    assert result_path(tmp_path, cell(seed=1)) != a


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_result(target, sample_result())
    before = target.read_bytes()

    def full_disk(handle):
        handle.write(b'{"partial": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, full_disk)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_written_results_round_trip_and_validate(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "r.json"
    write_result(target, sample_result("diverged"))
    assert read_result(target).status == "diverged"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not a readable result file"),
        (json.dumps({"schema_version": 1}), "does not match the result schema"),
        ("", "not a readable result file"),
    ],
)
def test_corrupt_results_are_named_errors(tmp_path: Path, content: str, problem: str) -> None:
    target = tmp_path / "bad.json"
    target.write_text(content)
    with pytest.raises(CorruptFileError, match=problem) as info:
        read_result(target)
    assert str(target) in str(info.value)


def test_tampered_status_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_result(target, sample_result())
    data = json.loads(target.read_text())
    data["status"] = "great"
    target.write_text(json.dumps(data))
    with pytest.raises(CorruptFileError, match="status"):
        read_result(target)


def test_should_run_modes(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    assert should_run(missing, "missing") and should_run(missing, "never")
    done = tmp_path / "done.json"
    write_result(done, sample_result("ok"))
    assert not should_run(done, "missing") and not should_run(done, "never") and should_run(done, "always")
    failed = tmp_path / "failed.json"
    write_result(failed, sample_result("failed"))
    assert should_run(failed, "missing") and not should_run(failed, "never")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    assert should_run(corrupt, "missing")


def test_committed_json_schema_is_current() -> None:
    committed = (REPO / "schemas" / "cell-result.schema.json").read_text()
    assert committed == result_schema_json(), "run `fpt-bench schema --output schemas/cell-result.schema.json`"


def test_every_result_key_is_documented() -> None:
    schema = json.loads(result_schema_json())
    undocumented = []
    for name, definition in schema["$defs"].items():
        for key, prop in definition.get("properties", {}).items():
            if "description" not in prop:
                undocumented.append(f"{name}.{key}")
    assert undocumented == []


def test_written_files_get_the_umask_permissions_not_a_temp_files(tmp_path: Path) -> None:
    """A result on a shared grid must be readable by the group: 0o666 less the umask, not mkstemp's 0o600."""
    import os

    from fpt_bench.infra.atomic import atomic_directory

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "r.json", lambda handle: handle.write(b"{}"))
        with atomic_directory(tmp_path / "d") as folder:
            (folder / "x").write_text("1")
        os.umask(0o002)
        atomic_write(tmp_path / "g.json", lambda handle: handle.write(b"{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "d" / "x").read_text() == "1"
    assert (tmp_path / "g.json").stat().st_mode & 0o777 == 0o664
