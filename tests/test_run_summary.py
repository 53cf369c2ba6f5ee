"""The summary `fpt-bench run` prints when its cells are done: each result beside its task's chance level and the
paper's number, what the numbers mean, and the next commands; and the first-run suite it is shown with."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY
from lb_support import make_result, test_host, write

from fpt_bench import SuiteCell, SuiteSpec
from fpt_bench.cells.summary import render_summary, summary_table
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host
from fpt_bench.leaderboard import load_results

SMALL = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}
DEMO = SuiteSpec(
    name="demo", description="pretrained vs random on the bit tasks",
    cells=[SuiteCell(task=t, label=label, backbone_args=args) for label, args in
           (("Pretrained", {"n_layers": 2}), ("Random", SMALL)) for t in ("bit_xor", "bit_memory")],
    reference={"Pretrained": {"bit_xor": 100.0}}, source="a paper, Table 1", notes=["a note"],
    next_steps=["fpt-bench run --suite bigger"],
)


def test_summary_says_what_each_number_means(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_xor", seed=0, test=0.99, val=0.99, backbone_args={"n_layers": 2}))
    write(tmp_path, make_result("bit_xor", seed=1, test=1.0, val=1.0, backbone_args={"n_layers": 2}))
    write(tmp_path, make_result("bit_xor", seed=0, test=0.52, val=0.52, backbone_args=SMALL))
    write(tmp_path, make_result("bit_memory", seed=0, test=None, val=None, status="failed", curve=[],
                                backbone_args=SMALL, error="out of memory\nat step 3"))
    results, _ = load_results([tmp_path])
    host = test_host()
    text = render_summary(summary_table(results, DEMO), host, DEMO, "results")
    assert text == """
summary — demo: pretrained vs random on the bit tasks
  row         task        test accuracy %       chance %  above chance  paper %
  ----------  ----------  --------------------  --------  ------------  -------
  Pretrained  bit_xor     99.5 ± 0.7 (n=2)      50        +49.5         100.0
  Random      bit_xor     52.0 (n=1)            50        +2.0          —
  Random      bit_memory  failed: reason above  75                      —

what the numbers mean:
  test accuracy: % of the task's test set answered right (the bit tasks: % of bits), with the parameters \
chosen by validation accuracy; mean ± std over seeds, n = seeds
  chance: what answering without solving the task scores; above chance: test accuracy minus it
    bit_xor: 50% (a coin flip for each bit)
    bit_memory: 75% (copy the query's unmasked half, guess the rest; a blind guess scores 50)
  paper: the paper's number for the same row and column (a paper, Table 1)
  note: a note

next:
  fpt-bench run --suite bigger
  fpt-bench leaderboard results --publish site/  # these results as a page (site/index.html)
  fpt-bench ls suites                            # the paper's tables as runnable grids
"""


def test_a_run_whose_cells_all_failed_does_not_suggest_publishing(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_memory", seed=0, test=None, val=None, status="failed", curve=[],
                                backbone_args=SMALL, error="n_layers=9: the model has 4"))
    results, _ = load_results([tmp_path])
    text = render_summary(summary_table(results, DEMO), test_host(), DEMO, "results", scored=False, smoke=True)
    assert "  note: profile smoke: a few steps that prove the pipeline runs; these numbers mean nothing yet" in text
    assert "Random  bit_memory  failed: reason above" in text
    assert text.endswith("\nnext:\n  every cell failed: fix what its error says (above) and run the same command "
                         "again\n")
    assert "--publish" not in text


def test_every_run_ends_with_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2",
                 "--device", "cpu", "--output-dir", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "\nsummary — this run\n" in text and "    bit_xor: 50% (a coin flip for each bit)" in text
    assert "gpt2[n_embd=32,n_head=2,n_layers=2,weights=random] / fpt  bit_xor" in text
    assert f"  fpt-bench leaderboard {out} --publish site/" in text
    assert main(["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2",
                 "--device", "cpu", "--output-dir", str(out), "--no-progress"]) == 0
    assert "\nsummary — this run\n" in capsys.readouterr().out  # finished cells found again are summarised too


def test_first_run_is_minilm_pretrained_vs_random_on_bit_xor() -> None:
    suite = get_host().suites.get("first_run")
    assert [(c.task, c.backbone, c.backbone_args, c.policy, c.row) for c in suite.cells] == [
        ("bit_xor", "minilm", {}, "fpt", "MiniLM, pretrained (frozen)"),
        ("bit_xor", "minilm", {"weights": "random"}, "fpt", "MiniLM, random init (frozen)")]
    for cell in suite.cells:
        assert cell.hparams.model_dump(exclude_none=True) == FIRST_RUN_HPARAMS
    assert [step.split("  #")[0] for step in suite.next_steps] == [
        "fpt-bench run --suite first_run --seeds 0,1,2", "fpt-bench run --suite offline --profile smoke --seeds 0",
        "fpt-bench run --suite offline --task bit_xor"]


FIRST_RUN_HPARAMS = {"steps": 200, "batch_size": 16, "eval_every": 50}


def test_the_lines_of_a_sweep_name_what_tells_its_cells_apart() -> None:
    """Cells that differ only in a swept setting (or a task/policy option) share a label; each line adds it."""
    from fpt_bench import CellConfig, HParamOverrides
    from fpt_bench.cells.profiles import resolve_hparams
    from fpt_bench.cells.sweep import distinct_labels

    spec = get_host().tasks.get("bit_xor").spec

    def cell(lr: float, seed: int = 0, task_args: dict | None = None) -> CellConfig:
        return CellConfig(task="bit_xor", task_args=task_args or {}, backbone="gpt2", policy="fpt", seed=seed,
                          profile="smoke", hparams=resolve_hparams(spec, "smoke", HParamOverrides(lr=lr)))

    a, b, c, d = cell(1e-4), cell(3e-4), cell(1e-4, seed=1), cell(1e-4, task_args={"n_val": 7})
    labels = distinct_labels([a, b, c])
    assert labels[a.config_hash()] == "bit_xor / gpt2 / fpt / seed 0 / smoke · lr=0.0001"
    assert labels[b.config_hash()] == "bit_xor / gpt2 / fpt / seed 0 / smoke · lr=0.0003"
    assert labels[c.config_hash()] == "bit_xor / gpt2 / fpt / seed 1 / smoke"  # its seed already tells it apart
    assert distinct_labels([a, d])[d.config_hash()] == "bit_xor / gpt2 / fpt / seed 0 / smoke · task.n_val=7"
