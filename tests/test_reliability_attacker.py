"""A second look as an attacker (issue 18): hostile inputs of the same classes that the first round of fixes was
not written against. All but the last broke something (a hang, a list of 10^15 numbers, a traceback, a walk of
the whole machine) until the fix each docstring names; the last checks that the first round covers links too."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
from conftest import result_files, run_cli
from hostile_support import (
    BUILD,
    FALSE,
    MARK,
    PROTO3,
    REDUCE,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE3,
    data,
    dtype,
    glob,
    in_dict,
    integer,
)
from lb_support import make_result, write
from reliability_support import tally, within

from fpt_bench import CorruptFileError, UserError
from fpt_bench.datastore import safepickle

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"




def test_a_forged_budget_of_10_15_steps_is_refused_at_once(tmp_path: Path) -> None:
    """Checking that an ok result's curve covers its budget listed every evaluation step: a result claiming 10^15
    steps evaluated every step would have built a list of 10^15 numbers. Now counted, and the result schema bounds
    steps at 10^9 besides: refused in milliseconds."""
    from fpt_bench.leaderboard.validate import check_result_file

    result = make_result(steps=4, curve=[(2, 0.25), (4, 0.5)])
    path = write(tmp_path, result)
    data = json.loads(path.read_text())  # forged by hand: TrainHParams and the schema bound steps at 10^9 now
    data["cell"]["hparams"].update(steps=10**15, eval_every=1)
    data["timing"]["steps"] = 10**15
    for point, step in zip(data["metrics"]["curve"], (5 * 10**14, 10**15), strict=True):
        point["step"] = step
    path.write_text(json.dumps(data))
    with within(10), pytest.raises(CorruptFileError, match="less than or equal to 1000000000"):
        check_result_file(path)
    tally("hostile inputs handled", "second look", 1)


def test_a_resume_checkpoint_at_step_10_15_is_ignored_at_once(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The same for a resume checkpoint: its curve was compared with a list of every evaluation up to its step."""
    from test_reliability_fuzz_validators import honest_resume_state

    from fpt_bench.training.resume_check import usable_state

    state, params, hparams = honest_resume_state()
    state["step"] = 10**15
    torch.save(state, tmp_path / "c.ckpt")
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3)
    with within(10):
        assert usable_state(tmp_path / "c.ckpt", version=1, config_hash="abc", hparams=hparams, trainable=params,
                            optimizer=optimizer) is None
    assert "is not a checkpoint step" in capsys.readouterr().err


def test_results_folder_with_links_out_is_confined(tmp_path: Path) -> None:
    """A results folder (a pull request can add symbolic links) holding a link to ``/`` and .json links to
    /dev/zero and to a file outside: the walk does not enter the linked folder (it would read the whole machine)
    and refuses the links out by name; the honest result still counts."""
    from fpt_bench.leaderboard import load_results

    root = tmp_path / "results"
    honest = write(root, make_result())
    (root / "everything").symlink_to("/")
    (root / "zero.json").symlink_to("/dev/zero")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(json.loads(honest.read_text())))
    (root / "borrowed.json").symlink_to(secret)
    started = time.perf_counter()
    with within(30):
        results, refused = load_results([root])
    assert time.perf_counter() - started < 10
    assert [x.path for x in results] == [honest]
    assert sorted(refused) == sorted(f"{root / n}: refused: a symbolic link out of {root}"
                                     for n in ("borrowed.json", "zero.json"))
    tally("hostile inputs handled", "second look", 1)


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_data_import_of_a_special_file(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``data import TASK FIFO`` blocked in the copy; ``data import TASK link-to-/dev/zero`` copied zeros until
    the disk was full. Both are one error now."""
    source = tmp_path / "train-images-idx3-ubyte.gz"
    if kind == "fifo":
        os.mkfifo(source)
    else:
        source.symlink_to("/dev/zero")
    with within(30):
        code, _, err = run_cli("data", "import", "mnist", str(source), "--data-dir", str(tmp_path / "data"),
                               capsys=capsys)
    assert code == 2 and f"import: {source} is a" in err and "Traceback" not in err, err
    tally("hostile inputs handled", "second look", 1)


def test_attention_with_a_hostile_parameter_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``fpt-bench attention`` reads a cell's saved parameters: as a fifo it blocked in torch.load; with a tensor
    of the wrong shape it ended in copy_'s traceback. Both are one error naming the file."""
    out = tmp_path / "out"
    assert run_cli("run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2",
                   "--device", "cpu", "--no-progress", "--task-args", "n_val=16,n_test=16", "--output-dir", str(out),
                   "--keep-checkpoints")[0] == 0
    [result] = result_files(out)
    params = result.with_suffix(".params.pt")
    honest = torch.load(params, weights_only=True)
    name = next(iter(honest["params"]))
    honest["params"][name] = torch.zeros(3, 3)
    torch.save(honest, params)
    code, _, err = run_cli("attention", str(result), capsys=capsys)
    assert code == 2 and f"{params}: its parameters do not fit the rebuilt model" in err and "Traceback" not in err
    params.unlink()
    os.mkfifo(params)
    with within(60):
        code, _, err = run_cli("attention", str(result), capsys=capsys)
    assert code == 2 and str(params) in err and "fifo" in err, err
    tally("hostile inputs handled", "second look", 2)


def test_pickles_of_bare_references_and_giant_shapes() -> None:
    """What the fuzzer and a second look found in the unpickler: a pickle that is only a global (it returned the
    callable itself), and an array shape holding an integer of a million bytes (refused at once, and the message
    does not try to print it)."""
    with pytest.raises(CorruptFileError, match="in place of data"):
        safepickle.loads(PROTO3 + glob("numpy", "dtype") + STOP, "bare")
    giant = b"\x8b" + (10**6).to_bytes(4, "little") + b"\x01" * 10**6  # LONG4: a positive 8-million-bit integer
    blob = in_dict(glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + integer(0) + TUPLE1
                   + data(b"b") + TUPLE3 + REDUCE + MARK + integer(1) + MARK + giant + TUPLE + dtype("u1") + FALSE
                   + data(b"\0") + TUPLE + BUILD)
    started = time.perf_counter()
    with pytest.raises(CorruptFileError, match="whose shape is not a tuple of at most 32 counts below 2"):
        safepickle.loads(blob, "giant")
    assert time.perf_counter() - started < 5
    tally("hostile inputs handled", "second look", 2)


def test_links_where_a_cells_files_belong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cell's lock that is a symbolic link to /dev/zero, and a backbone checkpoint named by a fifo: each one
    clear error, no hang."""
    out = tmp_path / "out"
    args = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2", "--device",
            "cpu", "--no-progress", "--task-args", "n_val=16,n_test=16", "--output-dir", str(out)]
    assert run_cli(*args)[0] == 0
    [result] = result_files(out)
    result.unlink()
    result.with_suffix(".lock").symlink_to("/dev/zero")
    with within(60):
        code, _, err = run_cli(*args, capsys=capsys)
    assert code == 2 and "is a character device where the cell's lock file belongs" in err, err
    fifo = tmp_path / "b.backbone.safetensors"
    os.mkfifo(fifo)
    from fpt_bench.host.manager import get_host

    backbone = get_host().backbones.get("gpt2")
    with within(30), pytest.raises(UserError, match="fifo"):
        backbone.build(backbone.options({"weights": f"checkpoint:{fifo}"}), 8)
    tally("hostile inputs handled", "second look", 2)
