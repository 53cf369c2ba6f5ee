"""Crash safety: runs killed with SIGKILL at seeded random points -- during a training step, and before, during
and after a checkpoint or result write -- again and again; every restart resumes, the finished cell has the
metrics of an uninterrupted run (bit for bit), a reader that validates every file while the kills happen never
sees a partial checkpoint or result, a finished result is never lost, and nothing is left behind.

Each child is forked from a warm server (``reliability_support.run_child``) and kills itself at the planned
point with a real SIGKILL, so the points are exact and the loop is reproducible from its seed."""

from __future__ import annotations

import random
import signal
from pathlib import Path

from conftest import run_cli
from reliability_support import PHASES, Fault, Reader, checkpoint_step, run_child, tally

from fpt_bench.api.cell import CellConfig
from fpt_bench.results.store import checkpoint_path, read_result, result_path

SEED = 20260611  # the kill loop's own seed: change it to explore other kill points
STEPS = 8
TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
KINDS = {"step", "checkpoint mid-write", "checkpoint before-rename", "checkpoint after-rename", "result mid-write",
         "result before-rename", "result after-rename"}


def argv(out: Path, seed: int, *extra: str) -> list[str]:
    return ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", str(STEPS),
            "--eval-every", "4", "--checkpoint-every", "1", "--batch-size", "4", "--task-args", "n_val=32,n_test=32",
            "--device", "cpu", "--no-progress", "--seeds", str(seed), "--output-dir", str(out), *extra]


def only_result(folder: Path) -> Path:
    [path] = [p for p in folder.rglob("*.json") if not p.name.startswith(".")]
    return path


def plan(kind: str, rng: random.Random, ckpt: Path) -> Fault:
    """A concrete fault of ``kind`` at a random point this attempt will reach (it resumes from ``ckpt``). The
    points are drawn near the resume point, so a cell survives several kills before it runs out of steps."""
    resumed = checkpoint_step(ckpt)
    checkpoints_left = STEPS - 1 - resumed  # a checkpoint after every step but the last
    if kind == "step" or (kind.startswith("checkpoint") and checkpoints_left < 1):
        return Fault("step", rng.randint(1, min(3, STEPS - resumed)))
    what, phase = kind.split()
    return Fault(what, rng.randint(1, min(2, checkpoints_left)) if what == "checkpoint" else 1, phase)


def test_sigkill_loop_resumes_exactly_and_never_exposes_a_partial_file(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    runs, logs = tmp_path / "runs", tmp_path / "logs"
    logs.mkdir()
    done: list[str] = []
    attempts = [0]

    def attempt(args: list[str], fault: Fault | None) -> int:
        attempts[0] += 1
        code = run_child(args, fault, logs / f"attempt-{attempts[0]}.log")
        if fault is not None:
            assert code == -signal.SIGKILL, f"{fault} was never reached (exit {code}; see the log)"
            done.append(fault.label())
        return code

    # cell A: a fresh cell killed 7 times; cell B: a finished cell rerun with --overwrite always, killed 5 times
    # (its previous result must stay readable throughout). Checkpoint kills come first in a cell (while
    # checkpoints are still to be written), result kills last; the order within each group and every point
    # are drawn from the seed.
    checkpoints = [f"checkpoint {phase}" for phase in PHASES]
    rng.shuffle(checkpoints)
    schedule_a = [*checkpoints, "step", "step", "result mid-write", "result before-rename"]
    schedule_b = [f"checkpoint {rng.choice(PHASES)}", "step", "step", "result mid-write", "result after-rename"]

    reference = tmp_path / "reference"
    assert attempt(argv(reference, 0), None) == 0
    expected_a = read_result(only_result(reference)).metrics
    out_a, out_b = runs / "a", runs / "b"
    assert attempt(argv(out_b, 1), None) == 0  # B's first, uninterrupted run: its reference
    expected_b = read_result(only_result(out_b)).metrics

    reader = Reader(runs)
    reader.start()
    try:
        for out, seed, schedule, extra in ((out_a, 0, schedule_a, []),
                                           (out_b, 1, schedule_b, ["--overwrite", "always"])):
            for kind in schedule:
                args = argv(out, seed, *extra)
                ckpt = checkpoint_path(result_path(out, _cell(args)))
                attempt(args, plan(kind, rng, ckpt))
            assert attempt(argv(out, seed, *extra), None) == 0  # the restart that finishes
    finally:
        reader.stop()

    assert set(done) >= KINDS, f"kill points not exercised: {KINDS - set(done)}"
    for out, expected in ((out_a, expected_a), (out_b, expected_b)):
        result = read_result(only_result(out))
        assert result.status == "ok" and result.timing.steps == STEPS
        assert result.metrics == expected  # bit-identical, learning curve included
        leftovers = sorted(p.name for p in out.rglob("*") if p.is_file() and p.suffix != ".json")
        assert leftovers == [], "temporary files, checkpoints or locks left behind"
    # a writer killed between writing the result and removing its checkpoint (and one killed mid-write) left
    # these next to a finished cell: the next sweep that skips the cell tidies them, under the cell's lock
    result = only_result(out_a)
    leftovers = [checkpoint_path(result), result.with_name(f".{result.name}.x1y2.tmp"),
                 result.with_name(f".{checkpoint_path(result).name}.z3.tmp")]
    for path in leftovers:
        path.write_bytes(b"left by a killed writer")
    assert run_cli(*argv(out_a, 0))[0] == 0
    assert not any(path.exists() for path in leftovers) and read_result(result).metrics == expected_a
    assert reader.partial == [], "a reader saw a partial file"
    assert reader.lost == [], "a finished result disappeared"
    assert reader.versions >= len(done)  # it did look: checkpoints and results, version after version
    tally("kill loop", "kills survived", len(done))
    tally("kill loop", "restarts", attempts[0] - 2)
    tally("kill loop", "file versions validated by the reader", reader.versions)
    tally("kill loop", "partial files seen", len(reader.partial))
    tally("kill loop", "results lost", len(reader.lost))
    for label in done:
        tally("kill points", label)


def _cell(args: list[str]) -> CellConfig:
    """The cell ``fpt-bench run args`` runs (to find its checkpoint)."""
    from fpt_bench.cells.config import expand_cells
    from fpt_bench.cli.app import run_config
    from fpt_bench.host.manager import get_host

    assert args[0] == "run"
    config = run_config(args[1:])
    [cell] = expand_cells(config, get_host(), "cpu")
    return cell
