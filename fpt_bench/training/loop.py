"""The training loop: seeded steps, Adam, clipping, accumulation, autocast, whole-split evaluation, model
selection on validation, divergence detection, checkpoints and exact resume.

Every step is a function of (cell seed, step, parameters, optimizer state): the batch and the dropout masks
of step ``s`` come from seeds derived from ``s``, so a run resumed from a checkpoint continues exactly as an
uninterrupted one would.

Out of memory during a step (CUDA, or any device whose error says "out of memory") backs off: the step is
retried from scratch with the same batch and seeds, cut into twice as many accumulation chunks (half the
micro-batch; the effective batch is unchanged), down to a micro-batch of one example. The number of chunks
is kept in checkpoints and the final micro-batch is recorded in the result.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import UserError
from fpt_bench.api.model import FPTModel
from fpt_bench.api.objectives import Objective
from fpt_bench.api.seeding import derive_seed
from fpt_bench.api.task import SplitData
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.failures import is_out_of_memory, os_error
from fpt_bench.infra.progress import Progress
from fpt_bench.results.schema import Speed
from fpt_bench.training import distributed, scoring, speed
from fpt_bench.training.batches import TrainingData
from fpt_bench.training.features import HeadOnly, build_cache
from fpt_bench.training.flops import step_flops
from fpt_bench.training.inference import evaluate_metrics
from fpt_bench.training.precision import autocast
from fpt_bench.training.resume_check import usable_state
from fpt_bench.training.threads import adopt_threads

CHECKPOINT_VERSION = 1


@dataclass
class TrainOutcome:
    status: str = "ok"
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    train_samples: int = 0
    train_tokens: int = 0
    eval_samples: int = 0
    train_flops: float = 0.0  # model FLOPs of the training steps (fpt_bench.training.flops)
    resumed_from_step: int | None = None
    micro_batch: int | None = None  # examples per forward/backward on this process at the end
    oom_backoffs: int = 0  # times out-of-memory halved the micro-batch (in this attempt)
    speed: Speed | None = None  # the speed settings in effect (result: provenance.speed)
    threads: int | None = None  # CPU threads the steps computed with (result: provenance.threads)


def loss_fn(logits: torch.Tensor, y: torch.Tensor, objective: Objective | None = None) -> torch.Tensor:
    """The training loss under ``objective`` (default: single-label classification, cross-entropy)."""
    if objective is None:
        return F.cross_entropy(logits.float().flatten(0, 1), y.reshape(-1))
    return objective.loss(logits, y)


class Trainer:
    def __init__(self, *, cell: CellConfig, model: FPTModel, train: TrainingData, val: SplitData,
                 tests: dict[str, SplitData], device: torch.device, precision: str,
                 checkpoint: Path | None, progress: Progress,
                 on_eval: Callable[[int, dict[str, float]], None] | None = None,
                 eval_precision: str | None = None) -> None:
        """``precision``: of the training steps; ``eval_precision`` (default: the same) of evaluation and of the
        feature cache (``fpt_bench.training.precision_auto`` decides both for ``precision=auto``)."""
        self.cell, self.model, self.train, self.val, self.tests = cell, model, train, val, tests
        self.device, self.precision, self.checkpoint = device, precision, checkpoint
        self.eval_precision = eval_precision or precision
        self.progress, self.on_eval = progress, on_eval
        self.hp = cell.hparams
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.eval_model: torch.nn.Module = speed.compiled(model) if self.hp.compile else model
        self.train_model = distributed.wrap(self.eval_model, device)  # DDP under torchrun, else the model itself
        self.optimizer, adam = speed.adam(self.params, self.hp, device)
        self.out = TrainOutcome()
        self.chunks = self.hp.grad_accum  # accumulation chunks per step; doubled when a step runs out of memory
        self.flops = step_flops(model)
        self.out.speed = speed.record(self, adam)
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None  # (primary metric, step, parameters)
        self.objective = scoring.bind(model.task.output.objective, train)
        self.threads = torch.get_num_threads()  # part of what the numbers depend on (fpt_bench/training/threads.py)
        self._loss_sum = 0.0
        self._loss_n = 0

    # --------------------------------------------------------------------------- checkpoints
    def _trainable(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().to("cpu", copy=True) for n, p in self.model.named_parameters() if p.requires_grad}

    def _save(self, step: int) -> None:
        if self.checkpoint is None or not distributed.is_main():
            return
        state = {
            "version": CHECKPOINT_VERSION, "config_hash": self.cell.config_hash(), "step": step,
            "params": self._trainable_state(), "optimizer": self.optimizer.state_dict(),
            "best": None if self.best is None else {"val": self.best[0], "step": self.best[1], "params": self.best[2]},
            "curve": self.out.curve, "loss_sum": self._loss_sum, "loss_n": self._loss_n,
            "train_seconds": self.out.train_seconds, "eval_seconds": self.out.eval_seconds,
            "train_samples": self.out.train_samples, "train_tokens": self.out.train_tokens,
            "eval_samples": self.out.eval_samples, "grad_chunks": self.chunks, "train_flops": self.out.train_flops,
            "threads": self.threads,
        }
        try:
            atomic_write(self.checkpoint, lambda handle: torch.save(state, handle))
        except (OSError, RuntimeError) as exc:  # a full disk: a checkpoint only saves time, so training goes on
            disk = os_error(exc)  # torch.save reports a failed write as a RuntimeError
            if disk is None:
                raise
            print(f"fpt-bench: warning: could not write the checkpoint of step {step} to {self.checkpoint} "
                  f"({disk.strerror or disk}); the previous checkpoint is intact and training goes on",
                  file=sys.stderr, flush=True)

    def _resume(self) -> int:
        state = usable_state(self.checkpoint, version=CHECKPOINT_VERSION, config_hash=self.cell.config_hash(),
                             hparams=self.hp, trainable=self._trainable(), optimizer=self.optimizer,
                             higher_is_better=self.objective.higher_is_better)
        if state is None:  # none, or one that does not fit this cell (a warning says why): start over
            return 0
        self._load_params(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["best"] is not None:
            self.best = (state["best"]["val"], state["best"]["step"], state["best"]["params"])
        self.out.curve = list(state["curve"])
        self._loss_sum, self._loss_n = state["loss_sum"], state["loss_n"]
        for key in ("train_seconds", "eval_seconds", "train_samples", "train_tokens", "eval_samples"):
            setattr(self.out, key, state[key])
        self.chunks = int(state.get("grad_chunks", self.chunks))
        self.out.train_flops = state.get("train_flops", 0.0)
        self.out.resumed_from_step = state["step"]
        self.threads = adopt_threads(state.get("threads"), self.checkpoint)  # the rest on the same thread count
        print(f"fpt-bench: {self.cell.task}: resuming at step {state['step']} of {self.hp.steps} from "
              f"{self.checkpoint} (it goes on exactly as if it had not stopped)", file=sys.stderr,
              flush=True)
        return int(state["step"])

    def save_selected(self, path: Path) -> None:
        """Write the trainable parameters the result reports (selected by validation) to ``path``, so the
        trained cell can be rebuilt later (``fpt-bench attention``). Call after ``run``."""
        state = {"version": CHECKPOINT_VERSION, "config_hash": self.cell.config_hash(),
                 "step": self.out.metrics.get("best_step"), "params": self._trainable_state()}
        atomic_write(path, lambda handle: torch.save(state, handle))

    def _load_params(self, params: dict[str, torch.Tensor]) -> None:
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in params.items():
                named[name].copy_(value)

    # ----------------------------------------------------------------------------------- loop
    def _step(self, step: int) -> float:
        """One optimizer step; out of memory retries it with half the micro-batch (same batch, same seeds)."""
        while True:
            try:
                return self._try_step(step)
            except Exception as exc:  # noqa: BLE001 - anything but out-of-memory is re-raised at once
                if not is_out_of_memory(exc):
                    raise
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._back_off(step, message)  # outside the except block: its frames (and tensors) are freed

    def _shard_size(self) -> int:
        return len(range(distributed.rank(), self.hp.batch_size, distributed.world()))

    def micro_batch(self) -> int:
        return math.ceil(self._shard_size() / self.chunks)

    def _back_off(self, step: int, message: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if distributed.world() > 1 or self.micro_batch() <= 1:
            why = "under torchrun the ranks cannot back off together" if distributed.world() > 1 else \
                "even one example per forward pass does not fit"
            raise UserError(f"out of memory at step {step + 1} with a micro-batch of {self.micro_batch()} "
                            f"({why}): {message}. Use a smaller backbone or batch, or --precision bf16")
        self.chunks *= 2
        self.out.oom_backoffs += 1
        print(f"fpt-bench: out of memory at step {step + 1}; retrying it with a micro-batch of "
              f"{self.micro_batch()} ({self.chunks} accumulation chunks, same effective batch)", file=sys.stderr,
              flush=True)

    def _try_step(self, step: int) -> float:
        batch = self.train.batch(step)
        torch.manual_seed(derive_seed(self.cell.seed, "step", step))  # dropout masks of this step
        self.optimizer.zero_grad(set_to_none=True)
        chunks = self.chunks
        size = len(batch)
        scale = distributed.world()  # DDP averages gradients over ranks; each rank holds 1/world of the batch
        total = torch.zeros((), device=self.device)
        for index in distributed.shard(size, batch.x.device).chunk(chunks):
            x, y = batch.x[index], batch.y[index]
            lengths = None if batch.lengths is None else batch.lengths[index]
            if lengths is not None:
                x = x[:, : int(lengths.max())]
            with autocast(self.device, self.precision):
                logits = self.train_model(x, lengths)
            loss = loss_fn(logits, y, self.objective) * (len(index) / size)
            (loss * scale).backward()
            total += loss.detach()
        if self.hp.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.hp.grad_clip)
        self.optimizer.step()
        if scale > 1:
            torch.distributed.all_reduce(total)  # the loss of the whole batch, for logging and divergence
        self.out.train_samples += size
        self.out.train_flops += self.flops.step(size, batch.x.shape[1])
        self.out.train_tokens += int(batch.lengths.sum()) if batch.lengths is not None else size * batch.x.shape[1]
        return total.item()

    def _evaluate(self, step: int) -> float:
        t0 = time.perf_counter()
        scores = evaluate_metrics(self.eval_model, self.val, self.hp.eval_batch_size, self.device,
                                  self.eval_precision, self.objective)
        self.out.eval_seconds += time.perf_counter() - t0
        self.out.eval_samples += len(self.val)
        train_loss = self._loss_sum / self._loss_n if self._loss_n else None
        self._loss_sum, self._loss_n = 0.0, 0
        self.out.curve.append(scoring.curve_point(step, train_loss, self.objective, scores))
        value = scores[self.objective.primary]
        if self.best is None or self.objective.better(value, self.best[0]):
            self.best = (value, step, self._trainable_state())
        if self.on_eval is not None:
            self.on_eval(step, scoring.event_metrics(scores, train_loss))
        return value

    def use_feature_cache(self) -> None:
        """Train the output layer on cached backbone features when the cell allows it (fpt_bench.training.features)."""
        record, cached = build_cache(self.hp.feature_cache, self.model, self.train, self.val, self.tests,
                                     self.hp.eval_batch_size, self.device, self.eval_precision)
        self.out.speed = self.out.speed.model_copy(update=record)
        if cached is not None:
            self.train, self.val, self.tests = cached  # type: ignore[assignment]
            self.eval_model = self.train_model = HeadOnly(self.model)
            self.flops = step_flops(self.model, head_only=True)
            self.out.speed.compile = False  # nothing left worth compiling
            speed.cached_steps_started(self)

    def run(self) -> TrainOutcome:
        with speed.threads_for_cached_steps():
            return self._run()

    def _run(self) -> TrainOutcome:
        start = self._resume()
        self.out.threads = self.threads
        self.use_feature_cache()
        hp = self.hp
        self.model.train()
        last_val = scoring.point_value(self.out.curve[-1], self.objective) if self.out.curve else None
        self.progress.start(total=hp.steps, done=start)
        step = start
        while step < hp.steps:
            t0 = time.perf_counter()
            loss = self._step(step)
            self.out.train_seconds += time.perf_counter() - t0
            if not math.isfinite(loss):
                self.out.status = "diverged"
                self.out.error = f"non-finite training loss ({loss}) at step {step + 1}"
                break
            self._loss_sum += loss
            self._loss_n += 1
            step += 1
            if step % hp.eval_every == 0 or step == hp.steps:
                last_val = self._evaluate(step)
            if hp.checkpoint_every and step % hp.checkpoint_every == 0 and step < hp.steps:
                self._save(step)
            self.progress.update(step, loss=loss, val=last_val, eval_seconds_left=self._eval_seconds_left(step))
        self.progress.close()
        self.out.steps = step
        self.out.micro_batch = self.micro_batch()
        self._final_metrics()
        return self.out

    def _eval_seconds_left(self, step: int) -> float:
        """The evaluation time still to come: the periodic validations after ``step`` and the final test passes,
        at the evaluation speed measured so far (before the first evaluation: a forward pass costing a third of a
        training step per example)."""
        hp = self.hp
        evals = len(range(step // hp.eval_every + 1, hp.steps // hp.eval_every + 1))
        evals += int(hp.steps % hp.eval_every > 0 and step < hp.steps)  # the last step is always evaluated
        examples = evals * len(self.val) + sum(len(t) for t in self.tests.values())
        if self.out.eval_samples:
            per_example = self.out.eval_seconds / self.out.eval_samples
        elif self.out.train_samples:
            per_example = self.out.train_seconds / self.out.train_samples / 3
        else:
            return 0.0
        return examples * per_example

    def _test(self) -> dict[str, dict[str, float]]:
        t0 = time.perf_counter()
        scores = {}
        for name, split in self.tests.items():
            scores[name] = evaluate_metrics(self.eval_model, split, self.hp.eval_batch_size, self.device,
                                            self.eval_precision, self.objective)
            self.out.eval_samples += len(split)
        self.out.eval_seconds += time.perf_counter() - t0
        return scores

    def _final_metrics(self) -> None:
        """Test with the parameters selected by validation (and after the last step, unless diverged)."""
        final = None if self.out.status == "diverged" else self._test()
        selected = None
        if self.best is not None and self.out.status == "ok" and self.best[1] == self.out.steps:
            selected = final  # the last step is the selected one: no second pass over the test set
        elif self.best is not None or self.out.status != "diverged":  # a diverged cell's parameters are not finite
            if self.best is not None:
                self._load_params(self.best[2])
            selected = self._test()
        best = None if self.best is None else (self.best[0], self.best[1])
        scoring.fill_metrics(self.out.metrics, self.objective, self.out.curve, best, final, selected)
