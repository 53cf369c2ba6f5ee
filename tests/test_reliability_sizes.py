"""Sizes and values (issue 18, class 10): a size the machine cannot hold is refused before anything is allocated,
and running out of memory anyway is a user's error with advice, never a traceback.

- hyperparameters and size options have upper bounds (a value no run needs is a usage error, exit code 2), and
  every float is finite, in a sweep as in a single value;
- a backbone within the bounds but larger than the memory free here is measured on the meta device and refused
  (proved in a child process whose address space is capped: a real allocation would fail differently);
- a batch (or its activations) larger than the device is refused before the first step;
- the CPU allocator's failure is out of memory: the training loop backs off from it like from CUDA's, and
  anywhere else in a cell it is a user error naming it.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import result_files, run_cli
from reliability_support import tally

from fpt_bench.api.model import FPTModel
from fpt_bench.infra.failures import is_out_of_memory

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
RUN = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--device", "cpu",
       "--task-args", "n_val=16,n_test=16", "--no-progress"]

# flag or option -> what the message says (each refused as a usage error before anything runs)
REFUSED = {
    ("--backbone-args", "weights=random,n_layers=99999999999"): "n_layers: Input should be less than or equal to 1024",
    ("--backbone-args", "weights=random,n_embd=99999999999,n_head=1"): "n_embd: Input should be less than or equal to "
                                                                       "65536",
    ("--backbone-args", "weights=random,n_head=4096"): "n_head: Input should be less than or equal to 1024",
    ("--backbone", "lstm", "--backbone-args", "hidden_size=99999999999"): "hidden_size: Input should be less than",
    ("--backbone", "lstm", "--backbone-args", "n_layers=5000"): "n_layers: Input should be less than or equal to 1024",
    ("--backbone", "lstm", "--backbone-args", "n_positions=99999999999"): "n_positions: Input should be less than",
    ("--steps", "100000000000000000000"): "--steps '100000000000000000000': Input should be less than or equal to "
                                          "1000000000",
    ("--batch-size", "2", "--grad-accum", str(10**23)): "--grad-accum",
    ("--eval-batch-size", str(10**30)): "--eval-batch-size",
    ("--sweep", "lr=nan,0.001"): "lr=nan: lr: Input should be a finite number",
    ("--sweep", "lr=inf,0.001"): "lr=inf: lr: Input should be a finite number",
    ("--lr", "inf"): "--lr 'inf': Input should be a finite number",
    ("--grad-clip", "inf"): "--grad-clip 'inf': Input should be a finite number",
    ("--sweep", "weight_decay=0,inf"): "weight_decay=inf",
}


@pytest.mark.parametrize("extra", list(REFUSED), ids=[" ".join(k)[:60] for k in REFUSED])
def test_values_no_run_needs_are_usage_errors(extra: tuple[str, ...], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path), *extra, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert REFUSED[extra] in err, err
    assert not any(tmp_path.rglob("*.json"))  # refused before any cell
    tally("hostile inputs handled", "sizes and values refused", 1)


def test_a_backbone_larger_than_memory_is_refused_before_allocating(tmp_path: Path) -> None:
    """In a child process capped at 8 GiB of address space: a backbone of ~1.5e4 GiB (within the option bounds)
    is refused by its size on the meta device. Building it for real would end in the allocator's error instead."""
    cap = 8 << 30
    code = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from fpt_bench.cli import main
sys.exit(main(sys.argv[1:]))
"""
    args = [*RUN, "--output-dir", str(tmp_path), "--backbone-args",
            "weights=random,n_layers=200,n_embd=20000,n_head=16"]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr
    (result,) = result_files(tmp_path)
    data = json.loads(result.read_text())
    assert data["status"] == "failed" and data["error_kind"] == "user"
    assert data["error"].startswith("backbone 'gpt2' (n_layers=200, n_embd=20000, n_head=16) would hold ")
    assert "GiB of parameters, more than the" in data["error"] and "choose smaller n_layers / n_embd" in data["error"]
    assert "Traceback" not in out.stderr
    tally("hostile inputs handled", "sizes and values refused", 1)


def test_sizes_the_library_refuses_are_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A width the default number of heads (GPT-2 base: 12) does not divide: the library's refusal, said as such."""
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path), "--backbone-args", "weights=random,n_embd=20",
                           capsys=capsys)
    assert code == 2 and "Traceback" not in err
    data = json.loads(result_files(tmp_path)[0].read_text())
    assert data["error_kind"] == "user"
    assert data["error"].startswith("backbone 'gpt2' (n_embd=20) cannot be built: `embed_dim` must be divisible by "
                                    "num_heads")
    tally("hostile inputs handled", "sizes and values refused", 1)


def test_the_memory_check_uses_what_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backbone built from a config is measured first: LSTM too, with the memory free here."""
    from fpt_bench.api import memory
    from fpt_bench.host.manager import get_host

    lstm = get_host().backbones.get("lstm")
    options = lstm.options({"n_layers": 2, "hidden_size": 64})
    module = lstm.build(options, 8)
    assert sum(p.numel() for p in module.parameters()) > 0
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)  # 1000 bytes free
    with pytest.raises(Exception, match=r"backbone 'lstm' \(n_layers=2, hidden_size=64\) would hold 0 MiB of "
                                        r"parameters, more than the 0 MiB"):
        lstm.build(options, 8)


@pytest.mark.parametrize(("extra", "said"), [
    (("--batch-size", "100000000"), "lower --batch-size or raise --grad-accum"),
    (("--batch-size", "2000000000", "--grad-accum", "2000000000"), "lower --batch-size"),
])
def test_a_batch_larger_than_the_device_is_refused_before_the_first_step(extra: tuple[str, ...], said: str,
                                                                           tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path), *extra, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    data = json.loads(result_files(tmp_path)[0].read_text())
    assert data["status"] == "failed" and data["error_kind"] == "user"
    assert data["error"].startswith("this cell needs at least ") and "GiB on cpu" in data["error"]
    assert said in data["error"] and data["timing"]["steps"] == 0  # no step ran
    tally("hostile inputs handled", "sizes and values refused", 1)


def test_a_task_option_that_allocates_too_much_is_a_user_error(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A validation split of 10^12 generated examples: the allocator refuses, and that is out of memory."""
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path), "--task-args", "n_val=1000000000000", capsys=capsys)
    assert code == 2 and "Traceback" not in err
    data = json.loads(result_files(tmp_path)[0].read_text())
    assert data["error_kind"] == "user" and data["error"].startswith("out of memory (")
    assert "can't allocate memory" in data["error"] or "not enough memory" in data["error"]
    tally("hostile inputs handled", "sizes and values refused", 1)


def _cpu_allocator_error() -> RuntimeError:
    """The error PyTorch's CPU allocator really raises (its wording is the installed version's)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    raise AssertionError("an allocation of 2^62 bytes succeeded")


def test_the_cpu_allocators_failure_is_out_of_memory() -> None:
    real = _cpu_allocator_error()
    assert is_out_of_memory(real), str(real)
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"))
    assert not is_out_of_memory(ValueError("can't allocate memory"))  # only the allocator's own error types


def test_the_training_loop_backs_off_from_the_cpu_allocator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Forward passes over more than 2 examples fail the way the CPU allocator does: the step is retried with
    half the micro-batch (same result as planning that micro-batch), as for CUDA's out-of-memory error."""
    error = _cpu_allocator_error()
    real = FPTModel.forward
    tried: list[int] = []

    def forward(self, x, lengths=None):  # type: ignore[no-untyped-def]
        if self.training:
            tried.append(x.shape[0])
            if x.shape[0] > 2:
                raise RuntimeError(str(error))
        return real(self, x, lengths)

    args = ("--steps", "4", "--eval-every", "2", "--batch-size", "8")
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path / "planned"), *args, "--grad-accum", "4",
                           capsys=capsys)
    assert code == 0, err
    monkeypatch.setattr(FPTModel, "forward", forward)
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path / "backed"), *args, capsys=capsys)
    assert code == 0, err
    assert tried[:3] == [8, 4, 2] and "retrying it with a micro-batch of 2" in err
    planned, backed = (json.loads(result_files(tmp_path / k)[0].read_text()) for k in ("planned", "backed"))
    assert backed["timing"]["oom_backoffs"] == 2 and backed["metrics"] == planned["metrics"]
    tally("bad runs", "out-of-memory backoffs injected", 2)
