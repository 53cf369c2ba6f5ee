"""The leaderboard on hand-made result files: aggregation, selection, missing / diverged cells, refusals, formats,
escaping, --add and --publish."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from lb_support import TINY, TWO_ROWS, make_result, test_host, write

from fpt_bench.cli import main
from fpt_bench.host import manager as plugin_host
from fpt_bench.leaderboard import build_table, load_results, render, to_dict


def table_of(root: Path, **kwargs):  # type: ignore[no-untyped-def]
    results, refused = load_results([root])
    assert refused == []
    return build_table(results, **kwargs)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    h = test_host()
    monkeypatch.setattr(plugin_host, "_HOST", h)
    return h


def test_seeds_aggregate_to_mean_std_n(tmp_path: Path) -> None:
    for seed, acc in enumerate([0.5, 0.6, 0.7]):
        write(tmp_path, make_result("bit_xor", seed=seed, test=acc, val=acc))
    t = table_of(tmp_path, suite=TWO_ROWS)
    s = t.cells[("FPT", "bit_xor")]
    assert (s.n, s.status) == (3, "ok")
    assert s.mean == pytest.approx(60.0) and s.std == pytest.approx(10.0)  # sample std (n - 1)
    assert s.delta == pytest.approx(-40.0)
    text = render(t, "github")
    assert "60.0 ± 10.0 (n=3) · paper 100.0 (Δ −40.0)" in text
    assert "bit\\_xor \\[v1, default\\]" in text  # version and protocol in the column header


def test_missing_cell_is_shown_missing(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_xor", test=0.9, val=0.9))
    t = table_of(tmp_path, suite=TWO_ROWS)
    assert t.cells[("FPT", "bit_memory")].status == "missing"
    assert t.cells[("Full", "bit_xor")].status == "missing"
    row = next(line for line in render(t, "github").splitlines() if line.startswith("| Full"))
    assert row.count("missing") == 2 and "paper 100.0†" in row  # the paper's own † mark is kept
    assert {(r["row"], r["column"]) for r in to_dict(t)["cells"] if r["status"] == "missing"} == {
        ("FPT", "bit_memory"), ("Full", "bit_memory"), ("Full", "bit_xor")}


def test_diverged_seed_is_marked_with_a_dagger(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_memory", seed=0, test=0.8, val=0.8))
    write(tmp_path, make_result("bit_memory", seed=1, test=0.6, val=0.6, status="diverged"))
    t = table_of(tmp_path, suite=TWO_ROWS)
    s = t.cells[("FPT", "bit_memory")]
    assert (s.status, s.n_diverged, s.n) == ("diverged", 1, 2)
    assert "70.0† ± 14.1 (n=2)" in render(t, "github")
    long = render(t, "csv", "long")
    assert "diverged (1 diverged†)" in long


def test_failed_seeds_are_counted_not_averaged(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_xor", seed=0, test=0.9, val=0.9))
    write(tmp_path, make_result("bit_xor", seed=1, test=None, val=None, status="failed", curve=[]))
    s = table_of(tmp_path, suite=TWO_ROWS).cells[("FPT", "bit_xor")]
    assert (s.mean, s.n, s.n_failed, s.status) == (pytest.approx(90.0), 1, 1, "ok")


def test_mixed_protocols_are_shown_side_by_side(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_xor", seed=0, test=0.5, val=0.5))
    write(tmp_path, make_result("bit_xor", seed=1, test=0.7, val=0.7, task_args={"protocol": "paper-compat"}))
    results, _ = load_results([tmp_path])
    t = build_table(results, TWO_ROWS)  # never refused, never mixed into one number
    assert t.rows == ["FPT", "FPT (protocol default)", "FPT (protocol paper-compat)", "Full"]
    assert t.cells[("FPT (protocol default)", "bit_xor")].mean == pytest.approx(50.0)
    compat = t.cells[("FPT (protocol paper-compat)", "bit_xor")]
    assert (compat.mean, compat.n, compat.reference) == (pytest.approx(70.0), 1, 100.0)  # the row's paper number
    assert t.cells[("FPT", "bit_memory")].status == "missing" and ("FPT", "bit_xor") not in t.cells
    assert t.columns[1].protocol == "default, paper-compat"
    text = render(t, "github")
    assert "FPT (protocol paper-compat) |" in text and "bit\\_xor \\[v1, default, paper-compat\\]" in text
    derived = build_table(results)  # rows and columns from the results: the same split
    assert derived.rows == ["gpt2[n_embd=32,n_head=2,n_layers=2,weights=random] / fpt (protocol default)",
                            "gpt2[n_embd=32,n_head=2,n_layers=2,weights=random] / fpt (protocol paper-compat)"]
    only = build_table(results, TWO_ROWS, protocol="paper-compat")
    assert only.cells[("FPT", "bit_xor")].n == 1 and only.columns[1].protocol == "paper-compat"
    long = build_table(results, TWO_ROWS, layout="long").long
    assert sorted(s.row for s in long if s.column == "bit_xor") == ["FPT (protocol default)",
                                                                    "FPT (protocol paper-compat)", "Full"]


def test_mixed_task_versions_and_profiles_are_shown_side_by_side(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_xor", seed=0, version="1"))
    write(tmp_path, make_result("bit_xor", seed=1, version="2"))
    results, _ = load_results([tmp_path])
    assert build_table(results, TWO_ROWS).rows == ["FPT", "FPT (version 1)", "FPT (version 2)", "Full"]
    other = tmp_path / "profiles"
    write(other, make_result("bit_xor", seed=0, profile="smoke", steps=4))
    write(other, make_result("bit_xor", seed=0, profile="quick", steps=8))  # the profile says it: steps not named
    write(other, make_result("bit_memory", seed=0, profile="quick", steps=8))
    results, _ = load_results([other])
    t = build_table(results, TWO_ROWS)
    assert t.rows == ["FPT (profile quick)", "FPT (profile smoke)", "Full"]  # several profiles: every row says its
    assert t.cells[("FPT (profile quick)", "bit_memory")].n == 1
    assert build_table(results, TWO_ROWS, profile="quick").cells[("FPT", "bit_xor")].n == 1


def test_learning_rate_is_selected_by_validation_not_test(tmp_path: Path) -> None:
    for seed in (0, 1):
        write(tmp_path, make_result("bit_xor", seed=seed, lr=1e-3, val=0.70, test=0.95))  # best test
        write(tmp_path, make_result("bit_xor", seed=seed, lr=1e-4, val=0.80, test=0.60))  # best validation
    t = table_of(tmp_path, suite=TWO_ROWS)
    s = t.cells[("FPT", "bit_xor")]
    assert s.lr == pytest.approx(1e-4) and s.mean == pytest.approx(60.0) and s.n == 2
    assert s.lr_candidates == {1e-4: pytest.approx(0.8), 1e-3: pytest.approx(0.7)}
    assert "· lr 0.0001" in render(t, "github")
    rows = list(csv.DictReader(io.StringIO(render(t, "csv", "long"))))
    swept = [r for r in rows if r["column"] == "bit_xor" and r["row"] == "FPT"]
    assert [(r["lr"], r["selected"]) for r in swept] == [("0.0001", "True"), ("0.001", "False")]


def test_other_hyperparameters_never_share_a_cell(tmp_path: Path) -> None:
    write(tmp_path, make_result("bit_xor", seed=0, steps=4, test=0.6, val=0.6))
    write(tmp_path, make_result("bit_xor", seed=1, steps=8, test=0.8, val=0.8))
    results, _ = load_results([tmp_path])
    t = build_table(results, TWO_ROWS)
    assert t.rows == ["FPT", "FPT (eval_every=2, steps=4)", "FPT (eval_every=4, steps=8)", "Full"]
    assert t.cells[("FPT (eval_every=4, steps=8)", "bit_xor")].mean == pytest.approx(80.0)
    long = render(build_table(results, layout="long"), "github", "long")
    assert "fpt (eval\\_every=2, steps=4)" in long and "fpt (eval\\_every=4, steps=8)" in long


def test_failed_cells_show_their_reason(tmp_path: Path) -> None:
    reason = "fashion_mnist: data missing: FashionMNIST/raw/train-images-idx3-ubyte.gz (run fpt-bench data import)"
    write(tmp_path, make_result("bit_xor", seed=0, test=None, val=None, status="failed", curve=[],
                                error=reason + "\nmore lines"))
    write(tmp_path, make_result("bit_memory", seed=0, test=0.9, val=0.9))
    write(tmp_path, make_result("bit_memory", seed=1, test=None, val=None, status="failed", curve=[], error="boom"))
    t = table_of(tmp_path, suite=TWO_ROWS)
    assert t.cells[("FPT", "bit_xor")].errors == [reason]
    text = render(t, "github")
    assert "failed: fashion\\_mnist: data missing" in text and "n=0" not in text
    assert "90.0 (n=1, 1 failed: boom)" in text
    rows = {r["column"]: r for r in csv.DictReader(io.StringIO(render(t, "csv", "long"))) if r["row"] == "FPT"}
    assert rows["bit_xor"]["status"] == f"failed: {reason}" and rows["bit_xor"]["n"] == "0"
    assert "| failed " in render(t, "github", "long")  # the mean column says failed, not a blank or n=0
    assert json.loads(render(t, "json"))["cells"][1]["errors"] == [reason]


def test_malformed_and_tampered_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    good = write(tmp_path, make_result("bit_xor", seed=0, test=0.9, val=0.9))
    (tmp_path / "truncated.json").write_text(good.read_text()[:100])
    data = json.loads(good.read_text())
    data["cell"]["hparams"]["lr"] = 0.1  # edited config: the hash no longer matches
    (tmp_path / "edited.json").write_text(json.dumps(data))
    data = json.loads(good.read_text())
    data["metrics"]["val_accuracy"] = 0.99  # better than anything on its own learning curve
    (tmp_path / "boosted.json").write_text(json.dumps(data))
    data = json.loads(good.read_text())
    data["metrics"]["test_accuracy"] = 3.0
    data["surprise"] = 1
    (tmp_path / "schema.json").write_text(json.dumps(data))
    results, refused = load_results([tmp_path])
    assert [x.path for x in results] == [good]
    reasons = "\n".join(refused)
    assert "truncated.json: not a readable result file" in reasons
    assert "edited.json: refused: provenance.config_hash is" in reasons and "edited after the run" in reasons
    assert "boosted.json: refused: metrics.val_accuracy/best_step (0.99" in reasons
    assert "schema.json: does not match the result schema" in reasons and "surprise" in reasons


def test_formats(tmp_path: Path) -> None:
    for seed, acc in enumerate([0.5, 0.7]):
        write(tmp_path, make_result("bit_xor", seed=seed, test=acc, val=acc))
    t = table_of(tmp_path, suite=TWO_ROWS)
    latex = render(t, "latex")
    assert "\\toprule" in latex and "60.0 $\\pm$ 14.1" in latex and "bit\\_xor" in latex
    assert "$^\\dagger$" in latex  # the paper's mark on Full / bit_xor
    wide = list(csv.reader(io.StringIO(render(t, "csv"))))
    assert wide[0][:6] == ["row", "bit_memory", "bit_memory std", "bit_memory n", "bit_memory status",
                           "bit_memory paper"]
    fpt = next(r for r in wide if r[0] == "FPT")
    assert fpt[6:11] == ["60.0", str(14.142135623730951), "2", "ok", "100.0"]
    data = json.loads(render(t, "json"))
    cell = next(c for c in data["cells"] if (c["row"], c["column"]) == ("FPT", "bit_xor"))
    assert cell["values"] == [50.0, 70.0] and cell["paper"] == 100.0 and len(cell["files"]) == 2
    page = render(t, "html")
    assert '<td data-num="60.0">' in page and 'id="two_rows-paper"' in page


def test_strings_from_results_and_plugins_are_escaped(tmp_path: Path) -> None:
    planted = '<script>alert("x")</script>|*a*'
    write(tmp_path, make_result("bit_xor", backbone_args={**TINY, "source": planted}))
    t = table_of(tmp_path)
    md, page = render(t, "github"), render(t, "html")
    assert "<script>" not in md and "&lt;script&gt;" in md and "\\|\\*a\\*" in md
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "\\textless{}" in render(t, "latex") or "\\ensuremath{<}" in render(t, "latex")


def test_cli_table_and_long_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str], host) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, make_result("bit_xor", seed=0, test=0.75, val=0.75))
    assert main(["leaderboard", str(tmp_path), "--suite", "two_rows", "--backbone-args", "source=nothing"]) == 0
    assert capsys.readouterr().out.count("missing") == 4  # the override matches no result
    assert main(["leaderboard", str(tmp_path), "--suite", "two_rows", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["suite"] == "two_rows"
    assert main(["leaderboard", str(tmp_path), "--layout", "long", "--format", "csv"]) == 0
    assert "75.0" in capsys.readouterr().out
    out = tmp_path / "t.tex"
    assert main(["leaderboard", str(tmp_path), "--format", "latex", "--output", str(out)]) == 0
    assert "\\bottomrule" in out.read_text()
    assert main(["leaderboard", str(tmp_path / "nowhere")]) == 2
    assert "no such result file or folder" in capsys.readouterr().err


def test_add_checks_and_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str], host) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    good = write(outside, make_result("bit_xor", seed=0, test=0.8, val=0.8))
    data = json.loads(good.read_text())
    data["provenance"]["seeds"]["data"] = 1
    (outside / "reseeded.json").write_text(json.dumps(data))
    folder = tmp_path / "leaderboard"
    code = main(["leaderboard", "--add", str(good), str(outside / "reseeded.json"), "--publish", str(folder)])
    captured = capsys.readouterr()
    assert code == 2
    assert "reseeded.json: refused: provenance.seeds (data) do not derive from cell seed 0" in captured.err
    copied = list((folder / "results").rglob("*.json"))
    assert len(copied) == 1 and copied[0].relative_to(folder / "results").parts[:2] == ("bit_xor", "gpt2__fpt")
    assert re.search(r"\| 80\.0 +\|", (folder / "LEADERBOARD.md").read_text())  # republished
    assert main(["leaderboard", "--add", str(good), "--publish", str(folder)]) == 0
    assert "unchanged" in capsys.readouterr().out
    other = make_result("bit_xor", seed=0, test=0.8, val=0.8)
    other.provenance.created_at = "2026-02-02T00:00:00+00:00"
    (outside / "rerun.json").write_text(other.model_dump_json())
    assert main(["leaderboard", "--add", str(outside / "rerun.json"), "--publish", str(folder)]) == 2
    assert "a different result of the same cell" in capsys.readouterr().err


def test_publish_writes_page_markdown_plots_and_reference(tmp_path: Path, host) -> None:  # type: ignore[no-untyped-def]
    from fpt_bench.leaderboard.page import SORT_SCRIPT, publish, script_hash

    folder = tmp_path / "leaderboard"
    (folder / "results").mkdir(parents=True)
    (folder / "leaderboard.toml").write_text('suites = ["two_rows"]\nprofile = "smoke"\n')
    write(folder / "results", make_result("bit_xor", seed=0, test=0.75, val=0.75))
    write(folder / "results", make_result("planted", seed=0, test=0.5, val=0.5))
    (folder / "results" / "bad.json").write_text("{")
    written = publish(folder, host)
    names = {p.name for p in written}
    assert {"LEADERBOARD.md", "index.html", "reference.json", "two_rows-figure1.png", "two_rows-figure1.svg",
            "two_rows-curves.png", "two_rows-curves.svg"} <= names
    assert (folder / "plots" / "two_rows-figure1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (folder / "LEADERBOARD.md").read_text()
    assert "75.0 (n=1) · paper 100.0 (Δ −25.0)" in md and "## Refused result files" in md and "bad.json" in md
    assert "&lt;script&gt;document.title=\"pwned\"&lt;/script&gt; a &amp; b" in md
    page = (folder / "index.html").read_text()
    assert page.count("<script>") == 1 and SORT_SCRIPT in page and f"'sha256-{script_hash()}'" in page
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt; a &amp; b" in page
    assert page.count("data:image/png;base64,") == 2
    ref = json.loads((folder / "reference.json").read_text())
    assert ref["suites"]["table1"]["reference"]["FPT"]["cifar10"] == 72.1
    assert "two_rows" not in ref["suites"]  # only the built-in suites' numbers are published as reference


def test_committed_leaderboard_is_current(tmp_path: Path) -> None:
    """leaderboard/ in the repository: every result passes the checks, and LEADERBOARD.md and reference.json are
    what --publish makes of them (else: `fpt-bench leaderboard --publish leaderboard/`)."""
    import shutil

    from fpt_bench.host.manager import get_host
    from fpt_bench.leaderboard.page import publish

    committed = Path(__file__).resolve().parent.parent / "leaderboard"
    results, refused = load_results([committed / "results"])
    assert refused == [] and results
    folder = tmp_path / "leaderboard"
    shutil.copytree(committed / "results", folder / "results")
    shutil.copy(committed / "leaderboard.toml", folder / "leaderboard.toml")
    publish(folder, get_host())
    for name in ("LEADERBOARD.md", "reference.json"):
        assert (folder / name).read_text() == (committed / name).read_text(), (
            f"leaderboard/{name} is stale: run `fpt-bench leaderboard --publish leaderboard/`")


def test_committed_leaderboard_holds_the_whole_offline_suite() -> None:
    """The published offline suite is complete: every cell ran under quick with seeds 0, 1 and 2, all ok."""
    from fpt_bench.host.manager import get_host
    from fpt_bench.leaderboard.page import load_config

    committed = Path(__file__).resolve().parent.parent / "leaderboard"
    config = load_config(committed)
    assert config.profile == "quick" and "offline" in config.suites
    results, _ = load_results([committed / "results"])
    table = build_table(results, get_host().suites.get("offline"), config.overrides, config.profile)
    assert len(table.cells) == 8
    for (row, column), stat in table.cells.items():
        seeds = sorted(run.result.cell.seed for run in stat.runs)
        assert (stat.status, stat.n, seeds) == ("ok", 3, [0, 1, 2]), (row, column)
