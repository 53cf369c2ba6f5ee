"""The result file of one cell: every key documented. Nothing reads or writes results except through it.

``schemas/cell-result.schema.json`` is this model's JSON Schema (``fpt-bench schema`` regenerates it; a test
checks that the committed file is current).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fpt_bench.api.hparams import MAX_STEPS

MAX_THREADS = 4096  # fpt_bench.training.threads keeps a resumed count within it too

SCHEMA_VERSION = 1


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CellInfo(_Doc):
    task: str = Field(description="task name")
    task_version: str = Field(description="task version: numbers of different versions are never mixed")
    task_args: dict[str, Any] = Field(default={}, description="task options as given")
    protocol: str = Field(default="default", description="evaluation protocol: 'default' or 'paper-compat'")
    backbone: str = Field(description="backbone name")
    backbone_args: dict[str, Any] = Field(default={}, description="backbone options as given")
    policy: str = Field(description="freeze policy name")
    policy_args: dict[str, Any] = Field(default={}, description="freeze policy options as given")
    seed: int = Field(description="cell seed; every other seed derives from it")
    profile: str = Field(description="profile: smoke, quick or paper")
    hparams: dict[str, Any] = Field(description="resolved training hyperparameters")


class CurvePoint(_Doc):
    step: int = Field(ge=0, le=MAX_STEPS, description="optimizer steps done")
    train_loss: float | None = Field(description="mean training loss since the previous point")
    val_accuracy: float | None = Field(description="accuracy on the whole validation set (None when the task's "
                                                   "objective reports no accuracy)")
    val_score: float | None = Field(default=None, description="the primary metric on the whole validation set, when "
                                                              "it is not accuracy (see Metrics.metric)")


class Metrics(_Doc):
    """Accuracy keys for objectives that report accuracy (classification); the task's primary metric in the
    ``*_score`` keys when it is not accuracy. The value that ranks a result: ``test_score`` when set, else
    ``test_accuracy``."""

    metric: str = Field(default="accuracy", description="the task's primary metric: it selects the parameters "
                                                        "(validation) and ranks results")
    higher_is_better: bool = Field(default=True, description="the primary metric's direction")
    percent: bool = Field(default=True, description="the primary metric is a fraction in [0, 1] (shown in %)")
    objective: dict[str, Any] = Field(default={}, description="the task's objective as run: kind, primary metric, "
                                                             "its options (target normalisation as fitted)")
    test_accuracy: float | None = Field(
        description="accuracy on the test split(s) with the parameters selected by validation")
    test_accuracy_final: float | None = Field(description="accuracy on the test split(s) after the last step")
    test_splits: dict[str, float] = Field(
        default={}, description="per test split primary metric (selected parameters) when a task has several")
    val_accuracy: float | None = Field(description="validation accuracy at the selected step")
    val_accuracy_final: float | None = Field(description="validation accuracy after the last step")
    best_step: int | None = Field(ge=0, le=MAX_STEPS,
                                  description="step of the best validation value of the primary metric")
    test_score: float | None = Field(default=None, description="the primary metric on the test split(s), selected "
                                                               "parameters (None when it is accuracy)")
    test_score_final: float | None = Field(default=None, description="the primary metric on the test split(s) "
                                                                     "after the last step (None when accuracy)")
    val_score: float | None = Field(default=None, description="the best validation value of the primary metric "
                                                              "(None when it is accuracy)")
    val_score_final: float | None = Field(default=None, description="the primary metric on validation after the "
                                                                    "last step (None when accuracy)")
    test_metrics: dict[str, float] = Field(default={}, description="every metric of the objective on the test "
                                                                   "split(s), selected parameters")
    train_loss: float | None = Field(description="mean training loss over the last evaluation interval")
    curve: list[CurvePoint] = Field(default=[], description="learning curve, one point per evaluation")


class Parameters(_Doc):
    total: int = Field(description="all parameters of the assembled model")
    trainable: int = Field(description="parameters with requires_grad")
    trainable_reachable: int = Field(
        description="trainable parameters a gradient can reach in this cell (e.g. only the used position rows)")
    trainable_fraction: float = Field(description="trainable / total")
    by_role: dict[str, dict[str, int]] = Field(description="role -> {total, trainable}")


class Timing(_Doc):
    wall_seconds: float = Field(description="wall time of the whole cell")
    train_seconds: float = Field(description="time spent in training steps")
    eval_seconds: float = Field(description="time spent evaluating")
    steps: int = Field(ge=0, le=MAX_STEPS, description="optimizer steps run (in this and earlier, resumed, attempts)")
    steps_per_second: float = Field(description="optimizer steps per training second")
    samples_per_second: float = Field(description="training examples per training second")
    tokens_per_second: float = Field(description="training tokens per training second")
    eval_samples_per_second: float | None = Field(default=None, description="evaluation examples per second")
    resumed_from_step: int | None = Field(default=None, ge=0, le=MAX_STEPS,
                                          description="checkpoint step this attempt resumed from")
    micro_batch_size: int | None = Field(
        default=None, description="examples per forward/backward pass (per process) at the end of training: "
                                  "batch_size / grad_accum, or less after out-of-memory backoffs")
    oom_backoffs: int = Field(default=0, description="times out-of-memory halved the micro-batch in this attempt "
                                                     "(the step is retried with the same batch and seeds)")
    model_flops: float | None = Field(
        default=None, description="model FLOPs of all training steps, estimated from parameter counts, tokens and "
                                  "what trains (formula in fpt_bench/training/flops.py and docs/performance.md)")
    model_flops_per_second: float | None = Field(default=None, description="model_flops / train_seconds")
    peak_flops_per_second: float | None = Field(
        default=None, description="the device's matmul peak in the compute dtype, measured in the same process")
    peak_dtype: str | None = Field(default=None, description="dtype of that peak: float32 or bfloat16")
    mfu: float | None = Field(default=None, description="model FLOPs utilisation: model_flops_per_second / "
                                                        "peak_flops_per_second (0-1)")
    feature_cache_seconds: float | None = Field(
        default=None, description="time spent computing cached backbone features (None when not cached); part "
                                  "of wall_seconds, not of train_seconds")


class Speed(_Doc):
    """The speed settings a cell ran with (docs/performance.md)."""

    autocast: str | None = Field(default=None, description="autocast dtype of the training steps ('bf16'), None "
                                                            "for plain fp32")
    autocast_eval: str | None = Field(
        default=None, description="autocast dtype of evaluation and of the feature cache ('bf16'), None for plain "
                                  "fp32 (results written before it was recorded evaluated as `autocast` says)")
    compile: bool = Field(default=False, description="the model ran under torch.compile")
    compile_backend: str | None = Field(default=None, description="torch.compile backend (when compiled)")
    attention: str | None = Field(default=None, description="the backbone's attention kernel (e.g. 'sdpa')")
    activation: str | None = Field(
        default=None, description="the backbone's feed-forward activation as run, as its transformers name (e.g. "
                                  "'gelu_pytorch_tanh'); None when the backbone does not say")
    optimizer: str = Field(description="optimizer and its implementation, e.g. 'Adam (foreach)'")
    data_on_device: bool = Field(default=True, description="splits are held as tensors on the device")
    training_data: str = Field(description="where training batches come from")
    augmentation: str | None = Field(default=None, description="how training batches are augmented (None: not)")
    bucket_by_length: bool = Field(default=False, description="training batches grouped by sequence length")
    padding: str = Field(description="how a batch of variable-length sequences is padded")
    eval: str = Field(description="how evaluation runs")
    backward_layers: int = Field(description="backbone layers the backward pass runs through (0: none, nothing "
                                             "below the output layer trains)")
    frozen_prefix_no_grad: bool = Field(
        description="input layer and backbone run without autograd graph (nothing in them trains)")
    feature_cache: bool = Field(default=False, description="the output layer trained on cached backbone features")
    feature_cache_reason: str | None = Field(default=None, description="why the cache was (not) used")
    feature_cache_seconds: float | None = Field(default=None, description="time to compute the cached features")
    feature_cache_mb: float | None = Field(default=None, description="size of the cached features in MiB")
    cached_step_threads: int | None = Field(
        default=None, description="CPU threads of the steps on cached features (1: the ops are tiny)")


class PrecisionAuto(_Doc):
    """How ``precision=auto`` was resolved on the machine the cell ran on (docs/performance.md)."""

    train: Literal["fp32", "bf16"] = Field(description="precision of the training steps")
    eval: Literal["fp32", "bf16"] = Field(description="precision of evaluation and of the feature cache")
    source: Literal["cuda", "device", "no_bf16", "measured", "cache"] = Field(
        description="'measured': calibrated for this cell; 'cache': a calibration of the same machine and workload "
                    "read from the precision cache; 'cuda': bf16 where the GPU supports it; 'no_bf16': a CPU whose "
                    "oneDNN has no bf16 (fp32); 'device': another device (fp32)")
    reason: str = Field(description="why, in words")
    bf16_speedup_train: float | None = Field(
        default=None, description="fp32 seconds / bf16 seconds of the backbone's matrix products in a training step "
                                  "(forward + backward), as calibrated (>1: bf16 faster)")
    bf16_speedup_eval: float | None = Field(
        default=None, description="the same for evaluation (forward under inference_mode)")
    calibration_seconds: float | None = Field(default=None, description="what the calibration took (when it ran)")
    rounds: int | None = Field(default=None, description="timed calibration rounds")
    row_scale: float | None = Field(default=None, description="share of the cell's rows (at most 512 per product) "
                                                               "the calibration timed")
    load_average: float | None = Field(default=None, description="the machine's 1-minute load average when the "
                                                                  "calibration ended (a busy machine's is not cached)")
    machine: str | None = Field(default=None, description="the machine key the choice holds for (CPU model and "
                                                           "avx/amx flags or GPU, torch version, threads)")
    workload: str | None = Field(default=None, description="the products timed: count x (rows x k @ k x n)")
    cache: str | None = Field(default=None, description="the precision cache file holding this choice (None: the "
                                                         "choice was not cached)")


class Provenance(_Doc):
    harness_version: str = Field(description="fpt-bench version that ran the cell")
    plugins: dict[str, str] = Field(description="plugin name -> version of every loaded plugin")
    components: dict[str, str] = Field(
        default={}, description="'task', 'backbone', 'policy' -> the qualified name (PLUGIN:NAME) of the component "
                                "the cell ran; cell.task etc. hold the name as selected (bare unless shared)")
    python: str = Field(description="Python version")
    torch: str = Field(description="PyTorch version")
    transformers: str | None = Field(description="transformers version (None when not installed)")
    platform: str = Field(description="operating system and machine")
    git_hash: str | None = Field(description="commit of the harness checkout, when it is one")
    device: str = Field(description="device the cell ran on")
    precision: str = Field(description="fp32 or bf16 (autocast) of the training steps")
    eval_precision: str | None = Field(
        default=None, description="fp32 or bf16 (autocast) of evaluation and of the feature cache; None in results "
                                  "written before it was recorded (evaluation ran in `precision`)")
    precision_auto: PrecisionAuto | None = Field(
        default=None, description="how precision=auto chose `precision` and `eval_precision` (None when the cell "
                                  "forced a precision or failed before the choice)")
    config_hash: str = Field(description="hash of the resolved cell config (names the result file)")
    seeds: dict[str, int] = Field(description="seeds derived from the cell seed: python, numpy, torch, data")
    data: dict[str, Any] = Field(default={}, description="data source, checksums or generator seeds per split")
    backbone: dict[str, Any] = Field(default={}, description="where the backbone weights came from")
    saved_backbone: str | None = Field(
        default=None, description="file name (in the result's folder) of the trained backbone saved with "
        "--save-backbone (safetensors); load it with --backbone-args weights=result:RESULT_JSON")
    speed: Speed | None = Field(default=None, description="speed settings in effect (absent when the cell failed "
                                                          "before training)")
    created_at: str = Field(description="UTC time the result was written (ISO 8601)")
    deterministic: bool = Field(default=False, description="run with --deterministic: torch deterministic "
                                                            "algorithms, CUBLAS_WORKSPACE_CONFIG, no cuDNN autotuning")
    threads: int | None = Field(
        default=None, ge=1, le=MAX_THREADS,
        description="CPU threads (torch.get_num_threads()) the cell computed with: on a CPU the "
                                  "numbers are bit-identical only at the same count (a resumed cell keeps its "
                                  "checkpoint's); None in results written before it was recorded")


class CellResult(_Doc):
    schema_version: Literal[1] = SCHEMA_VERSION
    cell: CellInfo
    status: Literal["ok", "diverged", "failed"]
    error: str | None = Field(default=None, description="why a cell failed or diverged")
    error_kind: Literal["user", "plugin", "internal"] | None = Field(
        default=None, description="for failed cells: 'user' (data missing, bad option: fixable), 'plugin' (a "
                                  "component broke the plugin contract; the error names it) or 'internal' (a bug)")
    metrics: Metrics
    parameters: Parameters | None = Field(description="absent when the cell failed before the model was built")
    timing: Timing
    provenance: Provenance


def primary_value(metrics: Metrics, which: str = "test") -> float | None:
    """The primary metric of a result: ``which`` is test, test_final, val or val_final (results written before
    objectives existed hold accuracy, their primary metric)."""
    split, _, final = which.partition("_")
    suffix = f"_{final}" if final else ""
    score = getattr(metrics, f"{split}_score{suffix}")
    return score if score is not None or metrics.metric != "accuracy" else getattr(metrics, f"{split}_accuracy{suffix}")
