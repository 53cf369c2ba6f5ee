"""Property-based fuzzing (hypothesis, derandomised, bounded) of what issue 18 added:

- the restricted unpickler, on random pickle opcode streams and random numpy-shaped payloads: it returns plain
  data (builtin containers and scalars, numpy arrays and scalars of non-object dtypes) or raises
  CorruptFileError -- never another exception, never a signal (it runs in a child process, so a crash is a
  test failure that names the input, not a dead pytest);
- the resume-checkpoint validator, on random edits of an honest state: it never raises, and whatever it accepts
  loads into the trainer's parameters and optimizer without error;
- the backbone-checkpoint reader, on random metadata and tensor shapes: a built module or one clear error;
- the result validator, on random edits of the metrics: whatever it accepts satisfies the relations it
  documents (fpt_bench/leaderboard/consistency.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lb_support import make_result, write
from reliability_support import tally

from fpt_bench import UserError

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
TESTS = Path(__file__).parent

# ------------------------------------------------------------------------------------------ the unpickler
UNPICKLER_FUZZ = r"""
import json, pickle, struct, sys
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
sys.path.insert(0, sys.argv[1])
import hostile_support as H
from fpt_bench import CorruptFileError
from fpt_bench.datastore import safepickle

EXAMPLES, LAST = int(sys.argv[2]), sys.argv[3]
counts = {"cases": 0, "refused": 0, "loaded": 0}
GLOBALS = [("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
           ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"), ("builtins", "set"),
           ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"), ("builtins", "bytes"),
           ("__builtin__", "bytearray"), ("_codecs", "encode"), ("os", "system"), ("builtins", "eval"),
           ("builtins", "getattr"), ("numpy", "frombuffer"), ("copyreg", "_reconstructor")]
SIMPLE = [b"(", b")", b"]", b"}", b"a", b"e", b"s", b"u", b"t", b"l", b"d", b"\x85", b"\x86", b"\x87", b"R",
          b"b", b"\x81", b"N", b"\x88", b"\x89", b"\x94", b"2", b"0", b"1", b"\x8f", b"\x90", b"\x91"]
token = st.one_of(
    st.sampled_from(SIMPLE),
    st.integers(0, 255).map(lambda n: b"K" + bytes([n])),
    st.integers(-2**31, 2**31 - 1).map(lambda n: b"J" + struct.pack("<i", n)),
    st.integers(-2**70, 2**70).map(H.integer),
    st.floats(allow_nan=True).map(lambda x: b"G" + struct.pack(">d", x)),
    st.text(max_size=8).map(H.text),
    st.binary(max_size=24).map(H.data),
    st.sampled_from(GLOBALS).map(lambda g: H.glob(*g)),
    st.integers(0, 6).map(lambda n: b"h" + bytes([n])),
    st.integers(0, 6).map(lambda n: b"q" + bytes([n])),
)
opcode_streams = st.lists(token, max_size=40).map(lambda ts: b"\x80\x04" + b"".join(ts) + b".")

codes = st.sampled_from(["u1", "i8", "<f4", ">f8", "b1", "U3", "S2", "c16", "O8", "O", "V8", "M8", "f16", "u1,u1",
                         "x", ""])
states = st.builds(H.dtype_state, order=st.sampled_from(["<", ">", "|", "=", "?"]),
                   names=st.sampled_from([H.NONE, H.text("f") + H.TUPLE1]),
                   fields=st.sampled_from([H.NONE, H.EMPTY_DICT, H.EMPTY_DICT + H.text("f") + H.dtype("O8")
                                           + H.integer(0) + H.TUPLE2 + H.SETITEM]),
                   elsize=st.sampled_from([-1, 0, 1, 8, 2**31 - 1]), flags=st.integers(0, 255))
dtypes = st.builds(H.dtype, codes, st.one_of(st.none(), states))
shapes = st.lists(st.sampled_from([0, 1, 2, 3, 8, 2**31, 2**62]), max_size=3).map(tuple)
raws = st.one_of(st.binary(max_size=32).map(H.data), st.just(H.NONE), st.just(H.EMPTY_LIST + H.glob("os", "getcwd")
                 + H.APPEND))
arrays = st.builds(H.array, dtypes, shapes, raws, st.sampled_from(["numpy.core.multiarray", "numpy._core.multiarray"]))
scalars = st.builds(lambda d, r: H.glob("numpy.core.multiarray", "scalar") + d + r + H.TUPLE2 + H.REDUCE, dtypes, raws)
numpyish = st.one_of(arrays, scalars).map(lambda v: H.in_dict(v))
valid = st.builds(lambda a, p: pickle.dumps({"data": a, "labels": [0]}, protocol=p),
                  st.sampled_from([np.arange(6, dtype="u1").reshape(2, 3), np.ones(3, ">f8"), np.array(["ab"]),
                                   np.float32(2.5), np.zeros((0, 2))]), st.integers(0, 5))


@st.composite
def mutated(draw, blob):
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if draw(st.booleans()) and data:
            data[at] = draw(st.integers(0, 255))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def plain(value, depth=0):
    assert depth < 200
    if isinstance(value, np.ndarray | np.generic):
        assert value.dtype.kind in "biufcSU" and not value.dtype.hasobject and value.dtype.names is None, value.dtype
        return
    if isinstance(value, dict):
        for k, v in value.items():
            plain(k, depth + 1); plain(v, depth + 1)
        return
    if isinstance(value, list | tuple | set | frozenset):
        for v in value:
            plain(v, depth + 1)
        return
    assert value is None or isinstance(value, str | bytes | bytearray | int | float | complex | bool), type(value)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(blob=st.one_of(opcode_streams, numpyish, valid.flatmap(mutated), numpyish.flatmap(mutated)))
def fuzz(blob):
    with open(LAST, "wb") as handle:  # if this input kills the process, the test reads it back from here
        handle.write(blob)
    counts["cases"] += 1
    for encoding in ("ASCII", "latin1"):
        try:
            value = safepickle.loads(blob, "fuzz", encoding=encoding)
        except CorruptFileError:
            counts["refused"] += 1
            continue
        counts["loaded"] += 1
        plain(value)
        repr(value)  # touching every element is what crashed before


fuzz()
print(json.dumps(counts))
"""


def test_unpickler_never_crashes_on_random_pickles(tmp_path: Path) -> None:
    last = tmp_path / "last-input.pickle"
    proc = subprocess.run([sys.executable, "-c", UNPICKLER_FUZZ, str(TESTS), "400", str(last)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        blob = last.read_bytes() if last.exists() else b""
        pytest.fail(f"the unpickler fuzzer failed (exit {proc.returncode}) on input {blob!r}:\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["cases"] == 400 and counts["refused"] > 0 and counts["loaded"] > 0
    tally("fuzz cases", "unpickler (opcode streams, numpy payloads)", counts["cases"])
    tally("fuzz refused (clear error)", "unpickler (opcode streams, numpy payloads)", counts["refused"] // 2)
    tally("fuzz parsed", "unpickler (opcode streams, numpy payloads)", counts["loaded"] // 2)


# ------------------------------------------------------------------------------------- resume checkpoints
def honest_resume_state() -> tuple[dict[str, Any], dict[str, torch.Tensor], Any]:
    """What Trainer._save writes at step 4 of a 6-step cell (eval and checkpoint every 2), built by hand."""
    from fpt_bench.api.hparams import TrainHParams

    torch.manual_seed(0)
    params = {"input.weight": torch.nn.Parameter(torch.randn(3, 2)), "output.bias": torch.nn.Parameter(torch.randn(4))}
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3)
    for _ in range(4):
        for p in params.values():
            p.grad = torch.randn_like(p)
        optimizer.step()
    copy = {n: p.detach().clone() for n, p in params.items()}
    state = {"version": 1, "config_hash": "abc", "step": 4, "params": copy, "optimizer": optimizer.state_dict(),
             "best": {"val": 0.75, "step": 2, "params": dict(copy)},
             "curve": [{"step": 2, "train_loss": 0.7, "val_accuracy": 0.75},
                       {"step": 4, "train_loss": 0.6, "val_accuracy": 0.5}],
             "loss_sum": 0.0, "loss_n": 0, "train_seconds": 1.0, "eval_seconds": 0.5, "train_samples": 16,
             "train_tokens": 160, "eval_samples": 64, "grad_chunks": 1, "train_flops": 1e6}
    hparams = TrainHParams(steps=6, batch_size=4, lr=1e-3, eval_every=2, checkpoint_every=2)
    return state, params, hparams


leaf_values = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.sampled_from([0, 1, 2, 4, 6, 10**6]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5), st.lists(st.integers(0, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(lambda shape, kind: torch.zeros(shape, dtype=kind), st.lists(st.integers(0, 4), max_size=2),
              st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool])),
    st.just(torch.tensor(float("nan"))), st.just(torch.tensor(4.0)))


def alike(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same kind as ``value`` (a tensor of its shape and dtype, a number of its type)."""
    if isinstance(value, torch.Tensor):
        fill = st.floats(-10, 10) if value.is_floating_point() else st.integers(-3, 3)
        return st.one_of(st.just(value.clone()), fill.map(lambda x: torch.full_like(value, x)),
                         st.just(torch.full_like(value, float("nan")) if value.is_floating_point() else value))
    if isinstance(value, bool) or value is None:
        return st.sampled_from([value, not value])
    if isinstance(value, int):
        return st.integers(-2, 12)
    if isinstance(value, float):
        return st.floats(-1, 100)
    return st.just(value)


@st.composite
def edited_state(draw: st.DrawFn) -> dict[str, Any]:
    """The honest state with 1-3 random edits: a value somewhere inside replaced, a key deleted or added."""
    state, _, _ = honest_resume_state()
    for _ in range(draw(st.integers(1, 3))):
        node: Any = state
        for _ in range(draw(st.integers(0, 4))):
            keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if not isinstance(node[key], dict | list):
                break
            node = node[key]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(list(node)))
            op = draw(st.sampled_from(["alike", "alike", "replace", "delete", "add"]))
            if op == "alike":  # another value of the same kind: often still a state that fits
                node[key] = draw(alike(node[key]))
            elif op == "replace":
                node[key] = draw(leaf_values)
            elif op == "delete":
                del node[key]
            else:
                node[draw(st.one_of(st.text(max_size=4), st.integers(0, 9)))] = draw(leaf_values)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(leaf_values)
    return state


def test_resume_validator_accepts_only_what_loads(tmp_path: Path) -> None:
    """Random edits of an honest state: the validator never raises, and what it accepts is usable as the trainer
    uses it (optimizer.load_state_dict, the parameters copied in, one more step with finite results)."""
    from fpt_bench.training.resume_check import usable_state

    seen = {"accepted": 0, "refused": 0}

    @settings(FUZZ, max_examples=150)
    @given(state=edited_state())
    def fuzz(state: dict[str, Any]) -> None:
        _, params, hparams = honest_resume_state()
        optimizer = torch.optim.Adam(list(params.values()), lr=1e-3)
        path = tmp_path / "c.ckpt"
        torch.save(state, path)
        tally("fuzz cases", "resume checkpoint validator")
        accepted = usable_state(path, version=1, config_hash="abc", hparams=hparams, trainable=params,
                                optimizer=optimizer)
        if accepted is None:
            seen["refused"] += 1
            tally("fuzz refused (clear error)", "resume checkpoint validator")
            return
        seen["accepted"] += 1
        tally("fuzz parsed", "resume checkpoint validator")
        optimizer.load_state_dict(accepted["optimizer"])  # what the trainer does with it: must not fail
        with torch.no_grad():
            for name, value in accepted["params"].items():
                params[name].copy_(value)
        for p in params.values():
            p.grad = torch.ones_like(p)
        optimizer.step()
        assert all(bool(torch.isfinite(p).all()) for p in params.values())
        assert accepted["step"] < hparams.steps and accepted["curve"][-1]["step"] <= accepted["step"]

    fuzz()
    assert seen["accepted"] >= 5 and seen["refused"] >= 50, seen  # both paths were exercised


def test_the_honest_resume_state_is_accepted(tmp_path: Path) -> None:
    from fpt_bench.training.resume_check import usable_state

    state, params, hparams = honest_resume_state()
    torch.save(state, tmp_path / "c.ckpt")
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3)
    assert usable_state(tmp_path / "c.ckpt", version=1, config_hash="abc", hparams=hparams, trainable=params,
                        optimizer=optimizer) is not None


# ------------------------------------------------------------------------------------ backbone checkpoints
@pytest.fixture(scope="module")
def honest_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from backbone_helpers import build_backbone
    from test_reliability_checkpoints import _Holder

    from fpt_bench.api.backbone_checkpoint import save_backbone

    path = tmp_path_factory.mktemp("gpt2") / "honest.backbone.safetensors"
    module = build_backbone("gpt2", {"weights": "random", "n_layers": 1, "n_embd": 16, "n_head": 2})
    save_backbone(_Holder(module), path, "gpt2", {})
    return path


config_values = st.one_of(st.integers(-3, 40), st.sampled_from([10**9, 2**63, 10**30]), st.floats(allow_nan=True),
                          st.text(max_size=4), st.none(), st.booleans(), st.lists(st.integers(0, 3), max_size=2))


def test_backbone_checkpoint_reader_on_random_metadata(honest_gpt2: Path, tmp_path: Path) -> None:
    """Random config values, aliases and tensor shapes in an honest GPT-2 checkpoint: a module that runs, or one
    clear error naming the file."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from fpt_bench.host.manager import get_host

    with safe_open(str(honest_gpt2), framework="pt") as handle:
        honest_meta = dict(handle.metadata())
    honest_tensors = load_file(str(honest_gpt2))
    backbone = get_host().backbones.get("gpt2")
    seen = {"built": 0, "refused": 0}

    @settings(FUZZ, max_examples=40)
    @given(config=st.dictionaries(st.sampled_from(["n_layer", "n_embd", "n_head", "n_positions", "vocab_size",
                                                   "n_inner", "layer_norm_epsilon", "activation_function",
                                                   "scale_attn_weights", "new_key"]), config_values, max_size=3),
           aliases=st.one_of(st.just({}), st.dictionaries(st.text(max_size=12), st.sampled_from(
               ["model.wte.weight", "model.ln_f.bias", "nothing"]), max_size=2)),
           shapes=st.dictionaries(st.sampled_from(["model.ln_f.weight", "model.wpe.weight",
                                                   "model.h.0.attn.c_attn.weight"]),
                                  st.lists(st.integers(0, 40), min_size=1, max_size=3), max_size=2))
    def fuzz(config: dict[str, Any], aliases: dict[str, str], shapes: dict[str, list[int]]) -> None:
        tensors = {**honest_tensors, **{name: torch.zeros(shape) for name, shape in shapes.items()}}
        arch = json.loads(honest_meta["architecture"])
        arch["config"].update(config)
        meta = {**honest_meta, "architecture": json.dumps(arch), "aliases": json.dumps(aliases)}
        path = tmp_path / "forged.backbone.safetensors"
        save_file(tensors, str(path), metadata=meta)
        tally("fuzz cases", "backbone checkpoint reader")
        try:
            module = backbone.build(backbone.options({"weights": f"checkpoint:{path}"}), 8)
        except UserError as exc:
            seen["refused"] += 1
            tally("fuzz refused (clear error)", "backbone checkpoint reader")
            assert str(path) in str(exc), str(exc)
            return
        seen["built"] += 1
        tally("fuzz parsed", "backbone checkpoint reader")
        out = module(torch.zeros(1, 4, module.hidden_size), torch.ones(1, 4))  # what was accepted runs
        assert out.shape == (1, 4, module.hidden_size)

    fuzz()
    assert seen["built"] >= 1 and seen["refused"] >= 10, seen


# ----------------------------------------------------------------------------------------------- results
METRIC_FIELDS = ["test_accuracy", "test_accuracy_final", "val_accuracy", "val_accuracy_final", "best_step",
                 "train_loss"]


def test_accepted_results_satisfy_the_documented_relations(tmp_path: Path) -> None:
    """Random edits of an honest result's metrics, curve and timing: whatever the validator accepts satisfies
    every relation consistency.py documents."""
    seen = {"accepted": 0, "refused": 0}

    @settings(FUZZ, max_examples=150)
    @given(status=st.sampled_from(["ok", "diverged"]), edits=st.lists(st.tuples(
        st.sampled_from([*METRIC_FIELDS, "curve.step", "curve.val_accuracy", "curve.drop", "timing.steps",
                         "timing.wall_seconds", "test_splits"]),
        st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2, 4, None]), st.floats(allow_nan=True, allow_infinity=True),
                  st.integers(-1, 10))), max_size=3))
    def fuzz(status: str, edits: list[tuple[str, Any]]) -> None:
        from fpt_bench import CorruptFileError
        from fpt_bench.leaderboard.validate import check_result_file

        result = make_result(status=status, curve=[(2, 0.25), (4, 0.5)] if status == "ok" else [(2, 0.25)])
        path = write(tmp_path, result)
        data = json.loads(path.read_text())
        m = data["metrics"]
        for where, value in edits:
            if where.startswith("curve.") and m["curve"]:
                if where == "curve.drop":
                    m["curve"].pop()
                else:
                    m["curve"][-1][where.split(".")[1]] = value
            elif where.startswith("timing."):
                data["timing"][where.split(".")[1]] = value
            elif where == "test_splits":
                m["test_splits"] = {"a": value, "b": 0.5}
            elif where in METRIC_FIELDS:
                m[where] = value
        path.write_text(json.dumps(data))
        tally("fuzz cases", "result validator (relations)")
        try:
            accepted = check_result_file(path)
        except CorruptFileError as exc:
            seen["refused"] += 1
            tally("fuzz refused (clear error)", "result validator (relations)")
            assert str(exc).startswith(str(path))
            return
        seen["accepted"] += 1
        tally("fuzz parsed", "result validator (relations)")
        a, hp = accepted.metrics, accepted.cell.hparams
        numbers = [v for v in (a.test_accuracy, a.test_accuracy_final, a.val_accuracy, a.val_accuracy_final,
                               a.train_loss, accepted.timing.wall_seconds) if v is not None]
        assert all(math.isfinite(v) for v in numbers)
        points = [(p.step, p.val_accuracy) for p in a.curve]
        assert all(s % hp["eval_every"] == 0 or s == hp["steps"] for s, _ in points)
        if accepted.status == "ok":
            assert points and points[-1][0] == hp["steps"] and a.val_accuracy_final == points[-1][1]
            assert a.val_accuracy == max(v for _, v in points) and a.best_step in [s for s, _ in points]
            assert a.test_accuracy is not None and a.test_accuracy_final is not None
            if a.best_step == hp["steps"]:
                assert a.test_accuracy == a.test_accuracy_final
        if a.test_splits:
            assert len(a.test_splits) > 1
            assert abs(sum(a.test_splits.values()) / len(a.test_splits) - a.test_accuracy) < 1e-9

    fuzz()
    assert seen["accepted"] >= 5 and seen["refused"] >= 50, seen
