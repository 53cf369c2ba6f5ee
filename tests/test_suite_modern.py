"""The modern suite: its grid, and `fpt-bench ls cells --suite modern` with the hub off: what needs a download
is unavailable (naming the repository), what does not (a timm ViT at random init) is missing, and a model put in
the cache becomes runnable."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from fpt_bench.api import availability
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host

TASKS = ["bit_memory", "bit_xor", "listops", "mnist", "cifar10", "cifar10_lra", "remote_homology"]
MODELS = ["Pythia-70M", "Pythia-160M", "Pythia-410M", "Pythia-1B", "Pythia-1.4B", "Llama-3.2-1B", "Qwen3-0.6B",
          "Mamba-1.4B", "DINOv2 ViT-B/14 (timm)"]


def test_the_grid_is_each_model_pretrained_and_random_on_the_papers_tasks() -> None:
    host = get_host()
    suite = host.suites.get("modern")
    assert suite.rows() == [f"{m}, {init}" for m in MODELS for init in ("pretrained", "random init")]
    assert suite.columns() == TASKS and len(suite.cells) == 18 * 7
    assert {c.policy for c in suite.cells} == {"fpt"} and not suite.reference
    by_row = {c.row: (c.backbone, c.backbone_args) for c in suite.cells}
    assert by_row["Pythia-1.4B, pretrained"] == ("hf_decoder", {"preset": "pythia-1.4b"})
    assert by_row["Mamba-1.4B, random init"] == ("hf_ssm", {"preset": "mamba-1.4b", "weights": "random"})
    assert by_row["DINOv2 ViT-B/14 (timm), pretrained"] == ("timm_vit", {"model": "vit_base_patch14_dinov2.lvd142m"})
    for cell in suite.cells:  # every cell's options are valid for its backbone
        host.backbones.get(cell.backbone).options(cell.backbone_args)


def _ls(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> dict[str, tuple[str, str]]:
    assert main(["ls", "cells", "--suite", "modern", "--output-dir", str(tmp_path / "none"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return {r["cell"]: (r["status"], r["detail"]) for r in rows}


def test_ls_cells_with_the_hub_off(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    rows = _ls(capsys, tmp_path)
    assert len(rows) == 126
    key = "Pythia-70M, random init | mnist: mnist / hf_decoder[preset=pythia-70m,weights=random] / fpt"
    status, detail = rows[key]
    assert status == "unavailable"
    assert detail.startswith(f"the model 'EleutherAI/pythia-70m' is not here (not in the Hugging Face cache {cache}) "
                             f"and the hub cannot be reached (HF_HUB_OFFLINE is set). To get it: where there is "
                             f"internet, run `hf download EleutherAI/pythia-70m`")
    timm_random = [s for cell, (s, _) in rows.items() if cell.startswith("DINOv2 ViT-B/14 (timm), random")]
    timm_pretrained = [d for cell, (_, d) in rows.items() if cell.startswith("DINOv2 ViT-B/14 (timm), pretrained")]
    if find_spec("timm"):
        assert timm_random == ["missing"] * 7  # random init downloads nothing: it can run here
        assert "timm/vit_base_patch14_dinov2.lvd142m" in timm_pretrained[0]
    else:
        assert "pip install 'fpt-bench[timm]'" in timm_pretrained[0]
    others = [s for cell, (s, _) in rows.items() if not cell.startswith("DINOv2")]  # a shared reason is said once
    assert others == ["unavailable"] * 112

    # the config of Pythia-70M in the cache: its random-init cells can run, its pretrained ones still need weights
    snapshot = cache / "models--EleutherAI--pythia-70m" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "gpt_neox"}')
    (cache / "models--EleutherAI--pythia-70m" / "refs").mkdir()
    (cache / "models--EleutherAI--pythia-70m" / "refs" / "main").write_text("0" * 40)
    rows = _ls(capsys, tmp_path)
    assert rows[key][0] == "missing"
    pretrained = rows["Pythia-70M, pretrained | mnist: mnist / hf_decoder[preset=pythia-70m] / fpt"]
    assert pretrained[0] == "unavailable" and "its weights are not in the Hugging Face cache" in pretrained[1]
    (snapshot / "model.safetensors").write_bytes(b"")
    assert _ls(capsys, tmp_path)["Pythia-70M, pretrained | mnist: mnist / hf_decoder[preset=pythia-70m] / fpt"][0] \
        == "missing"


def test_with_the_hub_on_nothing_is_unavailable_for_want_of_a_download(capsys: pytest.CaptureFixture[str],
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(availability, "hub_unreachable", lambda: None)  # a hub that answers (a run would download)
    rows = _ls(capsys, tmp_path)
    assert {s for s, _ in rows.values()} == ({"missing"} if find_spec("timm") else {"missing", "unavailable"})


def test_run_skips_what_needs_a_download_and_runs_the_rest(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    out = tmp_path / "out"
    code = main(["run", "--suite", "modern", "--task", "bit_xor", "--profile", "smoke", "--steps", "2",
                 "--backbone-args", "n_layers=1", "--device", "cpu", "--output-dir", str(out), "--no-progress"])
    printed = capsys.readouterr()
    skipped = [line for line in (printed.out + printed.err).splitlines() if ": unavailable: " in line]
    assert len(skipped) == (17 if find_spec("timm") else 16)
    results = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    if find_spec("timm"):  # the timm ViT at random init downloads nothing: it runs
        assert code == 0 and [r["cell"]["backbone"] for r in results] == ["timm_vit"]
        assert results[0]["status"] == "ok"
    else:
        assert results == []
