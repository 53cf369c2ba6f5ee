"""Publishing never surprises: `leaderboard RESULTS... --publish DIR` publishes those results; without
leaderboard.toml the page shows the suites the results belong to (and a table for the rest); nothing to publish
is a warning and a non-zero exit, never an empty page; settings that differ and failed cells are shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from lb_support import TINY, make_result, test_host, write

from fpt_bench.cli import main
from fpt_bench.host import manager as plugin_host
from fpt_bench.leaderboard import load_results
from fpt_bench.leaderboard.page import load_config, suites_of


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    h = test_host()
    monkeypatch.setattr(plugin_host, "_HOST", h)
    return h


def test_nothing_to_publish_is_a_warning_and_writes_nothing(tmp_path: Path, host,  # type: ignore[no-untyped-def]
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "site"
    assert main(["leaderboard", "--publish", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err == (f"fpt-bench: warning: no result files to publish in {folder / 'results'}; nothing was written. "
                   f"Give the results: fpt-bench leaderboard RESULT_DIR... --publish {folder}\n")
    assert not folder.exists()
    empty = tmp_path / "empty-results"
    empty.mkdir()
    assert main(["leaderboard", str(empty), "--publish", str(folder)]) == 1
    assert not (folder / "LEADERBOARD.md").exists()


def test_results_given_are_published_in_the_suites_they_belong_to(tmp_path: Path, host,  # type: ignore[no-untyped-def]
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    write(results, make_result("bit_xor", seed=0, test=0.75, val=0.75))  # two_rows' FPT / bit_xor cell
    write(results, make_result("bit_xor", seed=1, test=0.85, val=0.85))
    write(results, make_result("bit_memory", seed=0, test=None, val=None, status="failed", curve=[],
                               error="bit_memory: out of ideas\ntraceback"))
    lone = {**TINY, "n_layers": 1}
    write(results, make_result("bit_xor", seed=0, test=0.6, val=0.6, backbone_args=lone))  # in no suite
    folder = tmp_path / "site"
    assert main(["leaderboard", str(results), "--publish", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "added      " in out and out.strip().endswith("published " + f"{folder}/: reference.json, "
                                                            "LEADERBOARD.md, index.html")
    assert len(list((folder / "results").rglob("*.json"))) == 4  # copied in, after the checks
    assert load_config(folder).suites is None  # no leaderboard.toml
    md = (folder / "LEADERBOARD.md").read_text()
    assert "from 4 result file(s)" in md
    assert "## two\\_rows: a test suite: FPT vs full on the bit tasks" in md
    assert "80.0 ± 7.1 (n=2) · paper 100.0 (Δ −20.0)" in md
    assert "failed: bit\\_memory: out of ideas" in md and "n=0" not in md
    assert "## results outside any suite (rows: backbone / policy; columns: task)" in md
    assert "gpt2\\[n\\_embd=32,n\\_head=2,n\\_layers=1,weights=random\\] / fpt | 60.0 (n=1)" in md
    assert "two_rows-figure1.png" in {p.name for p in (folder / "plots").iterdir()}
    page = (folder / "index.html").read_text()
    assert "results outside any suite" in page and "failed: bit_memory: out of ideas" in page


def test_the_fewest_suites_that_hold_the_results(host) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    from lb_support import write as write_result

    with tempfile.TemporaryDirectory() as tmp:
        write_result(Path(tmp), make_result("bit_xor", seed=0, backbone_args={"weights": "random"}))
        write_result(Path(tmp), make_result("fashion_mnist", seed=0, backbone_args={"weights": "random"}))
        loaded, _ = load_results([Path(tmp)])
        # offline_gpt2 holds both (GPT-2 random init on bit_xor and Fashion-MNIST); ablation_random etc. hold one
        assert suites_of(loaded, host) == ["offline_gpt2"]
        assert suites_of([], host) == []


def test_settings_that_differ_are_published_side_by_side(tmp_path: Path, host,  # type: ignore[no-untyped-def]
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    write(results, make_result("bit_xor", seed=0, test=0.5, val=0.5, steps=20))
    write(results, make_result("bit_xor", seed=0, test=0.7, val=0.7, steps=30))
    write(results, make_result("bit_xor", seed=0, test=0.9, val=0.9, steps=30, profile="quick"))
    folder = tmp_path / "site"
    assert main(["leaderboard", str(results), "--publish", str(folder)]) == 0
    md = (folder / "LEADERBOARD.md").read_text()
    assert "| FPT (profile quick, eval\\_every=15, steps=30)" in md
    assert "| FPT (profile smoke, eval\\_every=10, steps=20)" in md
    assert "| FPT (profile smoke, eval\\_every=15, steps=30)" in md
    assert main(["leaderboard", str(results)]) == 0  # the table alone: not refused either
    assert "(profile smoke, eval\\_every=15, steps=30)" in capsys.readouterr().out
