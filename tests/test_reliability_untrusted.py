"""Untrusted files: pickles that import or call anything are refused (CIFAR batches, TAPE LMDB records);
checkpoints and parameter files load with ``weights_only`` (a planted payload never runs); archives cannot write
outside their destination (``..``, absolute and drive paths, links, devices, a symlinked destination); HTML
escapes every string that came from a result file or a plugin; ``trust_remote_code`` is never on.

Each payload would leave a marker file if it ran; the tests prove the payloads are live (they do run under a
plain ``pickle.loads`` / ``torch.load(weights_only=False)``) and that the harness never runs them."""

from __future__ import annotations

import ast
import html.parser
import json
import os
import pickle
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import result_files, run_cli, write_tar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lb_support import make_result, write
from reliability_support import tally

from fpt_bench import CorruptFileError, UserError
from fpt_bench.datastore import safepickle
from fpt_bench.datastore.archive import safe_extract

REPO = Path(__file__).resolve().parents[1]
TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"


# ----------------------------------------------------------------------------------------------- pickles
class Call:
    """Pickles as a call of ``func(*args)``: what an attacker's pickle does."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self):  # noqa: ANN204
        return self.func, self.args


def payloads(marker: Path) -> dict[str, bytes]:
    """Pickles that create ``marker`` when unpickled by a plain unpickler, each by another route."""
    touch = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": pickle.dumps({"data": Call(os.system, touch)}, protocol=2),
        "builtins.eval": pickle.dumps([Call(eval, code)], protocol=4),  # STACK_GLOBAL
        "builtins.exec": pickle.dumps(Call(exec, code), protocol=0),
        "builtins.open": pickle.dumps({"labels": Call(open, str(marker), "w")}, protocol=3),
        "subprocess.call": pickle.dumps(Call(subprocess.call, ["touch", str(marker)]), protocol=5),
        "getattr(__import__('os'), 'system')": (f"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR"
                                               f"(V{touch}\ntR.").encode(),
        "numpy runstring": b"\x80\x02cnumpy.testing._private.utils\nrunstring\nX" + len(code).to_bytes(4, "little")
        + code.encode() + b"}\x86R.",
        "_codecs.encode as a gadget": pickle.dumps(Call(__import__("codecs").encode, code, "rot13"), protocol=2),
        "INST opcode (protocol 0)": f"(S'{touch}'\nios\nsystem\n.".encode(),
        "bytearray(n)": b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x40\x85R.",
        "numpy _reconstruct of a callable": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncos\nsystem\n"
        + b"X" + len(touch).to_bytes(4, "little") + touch.encode() + b"\x85R.",
    }


def test_payloads_are_live(tmp_path: Path) -> None:
    """The payloads do run under a plain unpickler (so the refusals below prove something)."""
    for name, blob in payloads(tmp_path / "marker").items():
        if name in ("bytearray(n)", "numpy _reconstruct of a callable", "_codecs.encode as a gadget"):
            continue  # these attack resources or the allow-list itself, not by running code
        (tmp_path / "marker").unlink(missing_ok=True)
        try:
            pickle.loads(blob)  # noqa: S301 - on purpose: proving the payload runs when unrestricted
        except Exception:  # noqa: BLE001, S110 - some payloads fail after their side effect
            pass
        assert (tmp_path / "marker").exists(), f"payload {name} is not live"


def test_cifar_and_tape_pickles_that_import_or_call_are_refused(tmp_path: Path) -> None:
    import lmdb

    from fpt_bench_plugins.tasks.homology import read_lmdb
    from fpt_bench_plugins.tasks.vision import read_cifar_batch

    marker = tmp_path / "marker"
    cases = payloads(marker)
    for name, blob in cases.items():
        batch = tmp_path / "data_batch_1"
        batch.write_bytes(blob)
        with pytest.raises(CorruptFileError) as err:
            read_cifar_batch(batch)
        assert str(batch) in str(err.value) and "refusing to unpickle" in str(err.value), (name, str(err.value))
        for slot in ("num_examples", "record"):
            folder = tmp_path / f"lmdb-{slot}"
            env = lmdb.open(str(folder), map_size=1 << 20)
            with env.begin(write=True) as txn:
                txn.put(b"num_examples", blob if slot == "num_examples" else pickle.dumps(1))
                txn.put(b"0", blob)
            env.close()
            with pytest.raises(CorruptFileError, match="refusing to unpickle") as err:
                read_lmdb(folder)
            assert str(folder) in str(err.value), name
        assert not marker.exists(), f"payload {name} ran"
    tally("untrusted inputs refused", "pickles (CIFAR + TAPE LMDB x2)", 3 * len(cases))


def test_plain_data_still_loads() -> None:
    plain = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [1, 2], "b": bytearray(b"\x00\xff"),
             "s": frozenset({1}), "c": 1 + 2j, "scalar": np.float32(1.5)}
    for protocol in range(6):
        back = safepickle.loads(pickle.dumps(plain, protocol=protocol), "x")
        assert back["data"].tolist() == [[0, 1, 2], [3, 4, 5]] and back["b"] == bytearray(b"\x00\xff")
        assert back["scalar"] == np.float32(1.5) and back["c"] == 1 + 2j


def pickle_bombs() -> dict[str, tuple[bytes, str]]:
    """Pickles of plain data that name no global, each beyond a resource Python's unpickler does not bound."""
    deep = b"\x80\x02}q\x00K\x01" + b"\x85" * 300_000 + b"K\x00s."  # a dict key nested 300,000 deep
    deep_list = b"\x80\x02" + b"]" * 5_000 + b"a" * 4_999 + b"."  # lists appended into lists
    return {
        "a tuple key nested 300,000 deep (the C stack overflowed hashing it)": (deep, "nested more than 100 deep"),
        "lists nested 5,000 deep": (deep_list, "nested more than 100 deep"),
        "memo index 2**28 in 10 bytes": (b"\x80\x02K\x01r" + (2**28).to_bytes(4, "little") + b".",
                                        "memo index 268435456 beyond what 2 opcodes could have stored"),
        "memo read before written": (b"\x80\x02h\x05.", "memo entry 5 is read before it is written"),
        "2,000,000 empty dicts": (b"\x80\x02](" + b"}" * 2_000_000 + b"e.", "bytes of objects from"),
        "one dict referenced 3,000,000 times": (b"\x80\x02](}" + b"2" * 3_000_000 + b"e.", "bytes of objects from"),
        "20,000 colliding dict keys": (pickle.dumps({i * (2**61 - 1): 0 for i in range(20_000)}, protocol=2),
                                       "more than 10000 dict or set entries"),
        "a frozenset of 20,000 items": (pickle.dumps(frozenset(range(20_000)), protocol=4),
                                        "more than 10000 dict or set entries"),
    }


def test_pickles_beyond_a_resource_are_refused_before_unpickling(tmp_path: Path) -> None:
    from fpt_bench_plugins.tasks.vision import read_cifar_batch

    for name, (blob, reason) in pickle_bombs().items():
        batch = tmp_path / "test_batch"
        batch.write_bytes(blob)
        with pytest.raises(CorruptFileError) as err:
            read_cifar_batch(batch)
        assert f"{batch}: refusing to unpickle: " in str(err.value) and reason in str(err.value), (name, err.value)
    tally("untrusted inputs refused", "pickle bombs without globals (depth, memo, memory, collisions)",
          len(pickle_bombs()))


def test_a_real_sized_cifar_batch_passes_the_scan() -> None:
    rng = np.random.default_rng(0)
    batch = {"batch_label": "training batch 1 of 5", "labels": rng.integers(0, 10, 10_000).tolist(),
             "data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8),
             "filenames": [f"image_{i:05d}.png" for i in range(10_000)]}
    for protocol in (2, 4, 5):
        back = safepickle.loads(pickle.dumps(batch, protocol=protocol), "data_batch_1")
        assert back["data"].shape == (10_000, 3072) and back["labels"] == batch["labels"]


# ------------------------------------------------------------------------------------------- checkpoints
def malicious_checkpoint(path: Path, marker: Path, honest: dict[str, Any] | None = None) -> None:
    """A torch.save file whose pickle calls open(marker, 'w') when loaded without weights_only."""
    state = dict(honest or {"version": 1, "step": 5})
    state["extra"] = Call(open, str(marker), "w")
    torch.save(state, path)


def test_malicious_checkpoint_is_never_executed(tmp_path: Path) -> None:
    """A checkpoint beside a cell's result holding a payload: the resume refuses it (weights_only), the cell
    starts over and finishes; the payload never runs. The same file under a plain torch.load does run it."""
    marker = tmp_path / "marker"
    args = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "4",
            "--checkpoint-every", "2", "--device", "cpu", "--no-progress", "--output-dir", str(tmp_path / "out")]
    assert run_cli(*args, "--keep-checkpoints")[0] == 0
    [result] = result_files(tmp_path / "out")
    ckpt = result.with_suffix(".ckpt")
    honest = torch.load(ckpt, weights_only=True)
    malicious_checkpoint(ckpt, marker, honest)  # the right config hash: only the payload differs
    assert run_cli(*args, "--overwrite", "always")[0] == 0
    assert not marker.exists()
    data = json.loads(result.read_text())
    assert data["status"] == "ok" and data["timing"]["resumed_from_step"] is None  # refused, started over
    malicious_checkpoint(ckpt, marker, honest)
    params = result.with_suffix(".params.pt")
    malicious_checkpoint(params, marker, honest)
    from fpt_bench.analysis.attention import load_trained
    from fpt_bench.host.manager import get_host

    with pytest.raises(UserError, match="not a readable parameter file"):
        load_trained(result, get_host())
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # noqa: S614 - proving the payload is live
    assert marker.exists()
    tally("untrusted inputs refused", "checkpoints / parameter files", 2)


def test_every_torch_load_and_from_pretrained_is_guarded() -> None:
    """Static check over the harness, the built-in plugins and the example plugin: torch.load always with
    weights_only=True, from_pretrained always with trust_remote_code=False (explicit, so ** options cannot turn
    it on: a repeated keyword is a TypeError), no pickle.load outside the restricted unpickler, no extractall."""
    problems, seen = [], {"torch.load": 0, "from_pretrained": 0}
    files = [p for root in ("fpt_bench", "fpt_bench_plugins", "examples") for p in (REPO / root).rglob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if name == "torch.load":
                seen["torch.load"] += 1
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            if name.endswith(".from_pretrained") or name in ("pipeline", "transformers.pipeline"):
                seen["from_pretrained"] += 1
                value = keywords.get("trust_remote_code")
                if not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{where}: {name} without an explicit trust_remote_code=False")
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler") and path.name != "safepickle.py":
                problems.append(f"{where}: {name} outside fpt_bench/datastore/safepickle.py")
            if name.endswith("extractall") or name in ("eval", "exec", "yaml.load"):
                problems.append(f"{where}: {name}")
    assert problems == []
    assert seen["torch.load"] >= 3 and seen["from_pretrained"] >= 1  # the check found the calls it guards


def test_trust_remote_code_is_never_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local GPT-2 directory whose config asks for custom code (auto_map): loading it through the gpt2
    backbone passes trust_remote_code=False and never imports that code; no option can turn it on."""
    from transformers import GPT2Config, GPT2Model

    from fpt_bench.host.manager import get_host

    folder = tmp_path / "tiny-gpt2"
    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2)).save_pretrained(folder)
    marker = tmp_path / "remote-code-ran"
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    calls: list[dict[str, Any]] = []
    real = GPT2Model.from_pretrained.__func__

    def spy(cls: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(GPT2Model, "from_pretrained", classmethod(spy))
    backbone = get_host().backbones.get("gpt2")
    module = backbone.build(backbone.options({"weights": "pretrained", "source": str(folder)}), 16)
    assert module.hidden_size == 16 and not marker.exists()
    assert calls and all(c.get("trust_remote_code") is False for c in calls)
    with pytest.raises(UserError, match="trust_remote_code"):
        backbone.options({"trust_remote_code": True})  # there is no such option to pass


# ----------------------------------------------------------------------------------------------- archives
def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def hostile_archives(tmp_path: Path) -> dict[str, Path]:
    outside = str(tmp_path / "escaped.txt")
    zips = {}
    for label, name, mode in (("zip ..", "../escaped.txt", 0), ("zip absolute", outside, 0),
                              ("zip backslash ..", "..\\escaped.txt", 0), ("zip drive", "C:/escaped.txt", 0),
                              ("zip symlink", "link", 0o120777)):
        path = tmp_path / f"{label.replace(' ', '_')}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            info = zipfile.ZipInfo(name)
            info.external_attr = (mode or 0o100644) << 16
            zf.writestr(info, outside if mode else "evil")
        zips[label] = path
    tars = {
        "tar ..": [_info("ok.txt"), _info("a/../../escaped.txt")],
        "tar absolute": [_info(outside)],
        "tar symlink out": [_info("link", tarfile.SYMTYPE, str(tmp_path))],
        "tar symlink then file through it": [_info("link", tarfile.SYMTYPE, str(tmp_path)), _info("link/escaped.txt")],
        "tar hard link": [_info("hard", tarfile.LNKTYPE, outside)],
        "tar device": [_info("dev", tarfile.CHRTYPE)],
        "tar fifo": [_info("fifo", tarfile.FIFOTYPE)],
    }
    return {**zips, **{label: write_tar(tmp_path / f"{label.replace(' ', '_')}.tar", members)
                       for label, members in tars.items()}}


def test_archives_never_write_outside_their_destination(tmp_path: Path) -> None:
    archives = hostile_archives(tmp_path)
    for label, archive in archives.items():
        dest = tmp_path / "dest" / label.replace(" ", "_")
        with pytest.raises(CorruptFileError, match="refusing") as err:
            safe_extract(archive, dest)
        assert str(archive) in str(err.value), label
        assert not (tmp_path / "escaped.txt").exists(), label
    # a destination folder that is itself a symlink out of the destination
    dest = tmp_path / "dest" / "symlinked"
    dest.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (dest / "sub").symlink_to(tmp_path / "elsewhere")
    innocent = write_tar(tmp_path / "innocent.tar", [_info("sub/file.txt")])
    with pytest.raises(CorruptFileError, match="would land outside"):
        safe_extract(innocent, dest)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    tally("untrusted inputs refused", "hostile archives", len(archives) + 1)


def test_hostile_archive_through_data_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.cli import main

    archive = write_tar(tmp_path / "cifar-10-python.tar", [_info("cifar-10-batches-py/data_batch_1"),
                                                           _info("cifar-10-batches-py/../../../escaped.txt")])
    code = main(["data", "import", "cifar10", str(archive), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "climbs out" in err and "Traceback" not in err
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "data" / "cifar-10-batches-py").exists()


# -------------------------------------------------------------------------------------------------- HTML
class Structure(html.parser.HTMLParser):
    """Tags, event-handler attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code", "em", "section", "table",
             "thead", "tbody", "tr", "th", "td", "dl", "dt", "dd", "ul", "li", "script", "figure", "img", "figcaption"}
hostile_text = st.one_of(
    st.sampled_from(['<script>document.title="pwned"</script>', '<img src=x onerror=alert(1)>', '"><svg onload=x>',
                     "</td></tr></table><script>x</script>", "' onmouseover='x", "<!--", "]]>", "&lt;script&gt;"]),
    st.text(alphabet=st.sampled_from('<>"\'&/=; abcscript'), min_size=1, max_size=20),
)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(strings=st.lists(hostile_text, min_size=6, max_size=6))
def test_page_escapes_every_string_from_result_files(tmp_path: Path, strings: list[str]) -> None:
    """Strings planted in every free-text field of a result (task name and version, backbone and policy names
    and options, task options, profile, error) and in the name of a refused file: the page keeps exactly its own
    tags and its one script, and shows the planted strings as text."""
    import shutil

    from fpt_bench.host.manager import get_host
    from fpt_bench.leaderboard.collect import build_table, load_results
    from fpt_bench.leaderboard.page import PublishConfig, page, task_notes

    tally("fuzz cases", "HTML page (planted strings)")
    root = tmp_path / "results"
    shutil.rmtree(root, ignore_errors=True)
    task, option, backbone, policy, profile, error = strings
    result = make_result(task="x" + task, backbone_args={"weights": "random", "source": option}, backbone=backbone,
                         policy=policy, profile=profile, task_args={"note": error}, version=option,
                         status="failed", error=error)
    write(root, result)
    bad_name = "".join(c for c in task if c not in "/\\\0") or "x"
    (root / f"{bad_name}.json").write_text("{")
    results, refused = load_results([root])
    everything = build_table(results, None, layout="long", title="every published result")
    everything.refused = refused
    text = page([], everything, PublishConfig(suites=[]), tmp_path, len(results), task_notes(everything, get_host()))
    parsed = Structure()
    parsed.feed(text)
    assert set(parsed.tags) <= PAGE_TAGS and parsed.tags.count("script") == 1 and parsed.handlers == []
    shown = "".join(parsed.text)
    for planted in (task, backbone, policy):
        assert planted in shown, planted


def test_failed_result_error_text_is_escaped_in_markdown(tmp_path: Path) -> None:
    from fpt_bench.leaderboard.collect import build_table, load_results
    from fpt_bench.leaderboard.render import render

    planted = '<script>alert("x")</script>'
    write(tmp_path, make_result("bit_xor", policy=planted, status="failed", error=planted))
    results, _ = load_results([tmp_path])
    table = build_table(results, None, layout="long")
    for fmt in ("github", "html"):
        out = render(table, fmt, "long")
        assert "<script>" not in out and "&lt;script&gt;" in out


def test_markdown_links_and_spreadsheet_formulas_from_result_files_stay_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.leaderboard.render import csv_cell, md_escape

    link = md_escape(r"\[click\](https://evil.example/phish)")  # a backslash of its own no longer undoes the escape
    assert link == r"\\\[click\\\](https://evil.example/phish)"
    assert csv_cell('=HYPERLINK("https://evil.example")') == '\'=HYPERLINK("https://evil.example")'
    assert [csv_cell(v) for v in ("+1", "@SUM(A1)", "-2", "\tx", "bit_xor", 0.5, -0.5)] == \
        ["'+1", "'@SUM(A1)", "'-2", "'\tx", "bit_xor", 0.5, -0.5]
    write(tmp_path / "r", make_result("=cmd|' /C calc'!A0", seed=0, test=0.5, val=0.5))
    code, out, _ = run_cli("leaderboard", str(tmp_path / "r"), "--format", "csv", "--layout", "long", capsys=capsys)
    assert code == 0 and "'=cmd|' /C calc'!A0" in out
    tally("hostile inputs handled", "injections into Markdown links and CSV formulas", 3)


def test_a_task_named_dot_dot_stays_in_its_folder(tmp_path: Path) -> None:
    from fpt_bench.results.store import _slug

    assert [_slug(t) for t in ("..", ".", "", "a..b", "bit_xor")] == ["--", "-", "-", "a..b", "bit_xor"]
