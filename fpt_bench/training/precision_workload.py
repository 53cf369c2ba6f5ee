"""The calibration workload of ``precision=auto`` (``fpt_bench.training.precision_auto``): the backbone's own matrix
products, found by a probe, and their timing in fp32 and under bf16 autocast.

The probe runs the backbone once on one sequence of ``PROBE_TOKENS`` tokens under a dispatch mode that records
every ``mm`` / ``addmm`` / ``linear`` (rows, k, n) and skips it; the products are then scaled to the rows of a
training micro-batch and of an evaluation batch (capped at ``ROW_CAP``). ``measure`` times them in both
precisions (on a CPU on one thread, by its CPU time): forward + the backward the freeze policy needs for
training, forward under ``inference_mode`` for evaluation, each product in both precisions back to back, the order
alternating between rounds; each product counts at its fastest over the rounds (load from elsewhere only ever
adds time).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

BUDGET_S = 2.0  # the whole calibration, the backbone probe included
ROW_CAP = 512  # rows of a timed product at most (the timing stands for the cell's products, it need not equal them)
PROBE_SCALE = 1 / 4  # the first round's share of the rows: it estimates what a round costs
MIN_ROUNDS = 3  # timed rounds, after a warm-up round at the final size
MAX_ROUNDS = 9
PROBE_TOKENS = 5  # the probe runs the backbone on one sequence of this many tokens (prime: see _scale)
PRECISIONS = ("fp32", "bf16")
MODES = ("train", "eval")


@dataclass(frozen=True)
class Gemm:
    """``count`` products of (rows x k) @ (k x n) per training micro-batch or evaluation batch."""

    k: int
    n: int
    rows: int
    count: int


@dataclass(frozen=True)
class Workload:
    """The products a calibration times. ``backward``: what a training step's backward computes for them
    ('none': nothing below the output layer trains; 'inputs'; 'inputs+weights': backbone matrices train)."""

    train: tuple[Gemm, ...]
    eval: tuple[Gemm, ...]
    backward: str = "inputs"

    def describe(self) -> str:
        part = lambda gemms: ", ".join(f"{g.count}x ({g.rows}x{g.k} @ {g.k}x{g.n})" for g in gemms)  # noqa: E731
        return f"train [{self.backward}]: {part(self.train)}; eval: {part(self.eval)}"


@dataclass
class Measurement:
    """Per mode ('train' | 'eval') and precision: ``best``, the seconds of the workload with each product at its
    fastest over the timed rounds, and ``per_round``, each round's seconds (products weighted by how often a
    step or an evaluation batch runs them); what the calibration took in all; the share of the rows it timed; the
    load average at its end."""

    best: dict[str, dict[str, float]]
    per_round: dict[str, dict[str, list[float]]]
    seconds: float
    scale: float = 1.0
    load: float | None = None  # the 1-minute load average when it ended (None where the system has none)

    @property
    def rounds(self) -> int:
        return len(self.per_round["train"]["fp32"])


# ----------------------------------------------------------------------------------------- workload
class _Recorder(TorchDispatchMode):
    """Records the matrix products a forward pass dispatches and skips them (zeros of their shape instead):
    the probe costs the elementwise work of a few tokens only."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[tuple[int, int, int]] = Counter()  # (rows, k, n) -> calls

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        packet, aten = func.overloadpacket, torch.ops.aten
        if packet in (aten.mm, aten.addmm, aten.linear):
            x, w = (args[1], args[2]) if packet is aten.addmm else (args[0], args[1])
            if w.ndim == 2:
                k, n = (w.shape[1], w.shape[0]) if packet is aten.linear else (w.shape[0], w.shape[1])
                self.seen[(math.prod(x.shape[:-1]), k, n)] += 1
                return torch.zeros((*x.shape[:-1], n), dtype=x.dtype, device=x.device)
        return func(*args, **(kwargs or {}))


def backbone_gemms(backbone: torch.nn.Module, hidden_size: int) -> Counter[tuple[int, int, int]]:
    """The matrix products of one forward pass over one sequence of ``PROBE_TOKENS`` tokens: (rows, k, n) ->
    calls. Runs in evaluation mode under ``inference_mode``; the module's mode is restored."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.inference_mode(), _Recorder() as recorder:
            device = next(backbone.parameters()).device
            backbone(torch.zeros(1, PROBE_TOKENS, hidden_size, device=device))
    finally:
        backbone.train(was_training)
    return recorder.seen


def _scale(seen: Counter[tuple[int, int, int]], batch: int, seq_len: int) -> tuple[Gemm, ...]:
    """Products over all tokens of the probe (rows a multiple of PROBE_TOKENS) get batch x seq_len rows;
    per-token products (a recurrent step: the probe's batch of 1 row) get batch rows and run seq_len /
    PROBE_TOKENS times as often. Rows are capped at ROW_CAP."""
    gemms: Counter[tuple[int, int, int]] = Counter()
    for (rows, k, n), calls in seen.items():
        if rows % PROBE_TOKENS == 0:
            real, count = rows // PROBE_TOKENS * batch * seq_len, calls
        else:
            real, count = rows * batch, max(1, round(calls * seq_len / PROBE_TOKENS))
        gemms[(min(real, ROW_CAP), k, n)] += count
    return tuple(Gemm(k=k, n=n, rows=rows, count=count) for (rows, k, n), count in sorted(gemms.items()))


def training_backward(model: torch.nn.Module) -> str:
    """What a training step's backward computes for the backbone's products (see ``Workload``)."""
    from fpt_bench.training.flops import LOOKUP_ROLES, step_flops

    if not step_flops(model).inputs_backward:  # type: ignore[arg-type]
        return "none"
    roles = model.parameter_roles()  # type: ignore[operator]
    matrices_train = any(p.requires_grad and p.ndim >= 2 and roles[name] not in LOOKUP_ROLES
                         for name, p in model.named_parameters() if name.startswith("backbone."))
    return "inputs+weights" if matrices_train else "inputs"


def workload(model: torch.nn.Module, micro_batch: int, eval_batch: int, seq_len: int) -> Workload:
    """The calibration workload of an assembled ``FPTModel``: its backbone's products, its freeze policy."""
    seen = backbone_gemms(model.backbone, model.backbone.hidden_size)  # type: ignore[arg-type]
    return Workload(train=_scale(seen, micro_batch, seq_len), eval=_scale(seen, eval_batch, seq_len),
                    backward=training_backward(model))


def signature(model: torch.nn.Module, micro_batch: int, eval_batch: int, seq_len: int) -> str:
    """What the workload depends on, cheap to compute (a cache hit runs no probe): the backbone's class and
    matrix shapes, the rows of a training micro-batch and an evaluation batch, and the training backward."""
    backbone = model.backbone
    shapes = Counter(tuple(p.shape) for p in backbone.parameters() if p.ndim >= 2)  # type: ignore[union-attr]
    listed = " ".join(f"{n}x{list(shape)}" for shape, n in sorted(shapes.items()))
    return (f"{type(backbone).__module__}.{type(backbone).__qualname__} [{listed}] train {micro_batch}x{seq_len} "
            f"[{training_backward(model)}] eval {eval_batch}x{seq_len}")


# ------------------------------------------------------------------------------------------ timing
def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Bench:
    """The tensors of one share of the workload's rows (fp32 weights, as the cell holds them: autocast casts
    them per product, as in the cell). Values are uniform: a product's time does not depend on them."""

    def __init__(self, work: Workload, scale: float, device: torch.device, g: torch.Generator,
                 weights: dict[tuple[int, int], torch.Tensor]) -> None:
        self.device, self.backward = device, work.backward
        self.products: list[tuple[str, int, torch.Tensor, torch.Tensor]] = []  # (mode, count, x, w)
        for mode, gemms in (("train", work.train), ("eval", work.eval)):
            for gemm in gemms:
                if (gemm.k, gemm.n) not in weights:
                    weights[(gemm.k, gemm.n)] = _uniform((gemm.n, gemm.k), 0.05, g).to(device)
                x = _uniform((max(1, round(gemm.rows * scale)), gemm.k), 1.0, g).to(device)
                self.products.append((mode, gemm.count, x, weights[(gemm.k, gemm.n)]))

    def _seconds(self, mode: str, x: torch.Tensor, w: torch.Tensor, precision: str) -> float:
        clock = time.thread_time if self.device.type == "cpu" else time.perf_counter
        if mode == "eval" or self.backward == "none":
            with torch.inference_mode(), _autocast(self.device, precision):
                t0 = clock()
                F.linear(x, w)
                _sync(self.device)
                return clock() - t0
        x_ = x.detach().requires_grad_(True)
        w_ = w.detach().requires_grad_(self.backward == "inputs+weights")
        t0 = clock()
        with _autocast(self.device, precision):
            y = F.linear(x_, w_)
        y.backward(torch.ones_like(y))  # on a CPU the backward runs on this thread
        _sync(self.device)
        return clock() - t0

    def round(self, first: int) -> list[dict[str, float]]:
        """Every product once in each precision, back to back (``PRECISIONS[first]`` first): per product, the
        seconds by precision."""
        order = PRECISIONS[first:] + PRECISIONS[:first]
        return [{p: self._seconds(mode, x, w, p) for p in order} for mode, _, x, w in self.products]


def measure(work: Workload, device: torch.device, budget: float = BUDGET_S) -> Measurement:
    """Time ``work`` in both precisions in about ``budget`` seconds. On a CPU on one thread, by that thread's CPU
    time: the two precisions differ in what a product costs a core, and one thread's CPU time is what other
    processes on a shared machine disturb least (with several threads, a product waits for the slowest, and a
    thread the scheduler has parked stalls the others). A first round at ``PROBE_SCALE`` of the rows pays the
    process's first products (kernels) and estimates what a round costs (an overestimate); the rows then grow,
    up to all of them, while a warm-up round and ``MIN_ROUNDS`` timed rounds fit the rest of the budget (they
    never shrink: a small product says less). Timed rounds, fp32 or bf16 first in turn, run until ``MAX_ROUNDS``
    or the budget; each product counts at its fastest over them."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _measure(work, device, budget)
    finally:
        torch.set_num_threads(threads)


def _measure(work: Workload, device: torch.device, budget: float) -> Measurement:
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    weights: dict[tuple[int, int], torch.Tensor] = {}
    scale = PROBE_SCALE
    bench = _Bench(work, scale, device, g, weights)
    last = _elapsed(bench, 0)
    factor = min(1.0 / scale, (budget - (time.perf_counter() - t0)) / max(last * (1 + MIN_ROUNDS), 1e-9))
    if factor >= 1.5:
        scale *= factor
        bench = _Bench(work, scale, device, g, weights)
        last = _elapsed(bench, 1)  # the warm-up at this size
    fastest: list[dict[str, float]] = [{p: math.inf for p in PRECISIONS} for _ in bench.products]
    per_round: dict[str, dict[str, list[float]]] = {mode: {p: [] for p in PRECISIONS} for mode in MODES}
    rounds = 0
    while rounds < MIN_ROUNDS or (rounds < MAX_ROUNDS and time.perf_counter() - t0 + last < budget):
        start = time.perf_counter()
        seconds = bench.round(rounds % 2)
        last = time.perf_counter() - start
        rounds += 1
        for mode in MODES:
            for p in PRECISIONS:
                per_round[mode][p].append(_weighted(bench, seconds, mode, p))
        for low, product in zip(fastest, seconds, strict=True):
            for p in PRECISIONS:
                low[p] = min(low[p], product[p])
    best = {mode: {p: _weighted(bench, fastest, mode, p) for p in PRECISIONS} for mode in MODES}
    return Measurement(best=best, per_round=per_round, seconds=time.perf_counter() - t0, scale=scale,
                       load=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)


def _uniform(shape: tuple[int, int], bound: float, g: torch.Generator) -> torch.Tensor:
    return torch.empty(shape).uniform_(-bound, bound, generator=g)


def _elapsed(bench: _Bench, first: int) -> float:
    start = time.perf_counter()
    bench.round(first)
    return time.perf_counter() - start


def _weighted(bench: _Bench, seconds: list[dict[str, float]], mode: str, precision: str) -> float:
    return sum(count * s[precision] for (m, count, _, _), s in zip(bench.products, seconds, strict=True) if m == mode)
