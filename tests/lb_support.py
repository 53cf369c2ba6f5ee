"""Hand-made result files for the leaderboard tests: consistent with the schema and their provenance (the config
hash is the hash of the config they state, the seeds derive from the cell seed), unless a test breaks them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpt_bench import hookimpl
from fpt_bench.api.cell import CellConfig
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.api.seeding import derive_seed
from fpt_bench.api.suites import SuiteCell, SuiteSpec
from fpt_bench.host.manager import Host
from fpt_bench.results.schema import CellInfo, CellResult, CurvePoint, Metrics, Parameters, Provenance, Timing
from fpt_bench.results.store import result_path, write_result

TINY = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}


def make_result(task: str = "bit_xor", seed: int = 0, test: float | None = 0.5, val: float | None = 0.5,
                status: str = "ok", lr: float = 1e-3, steps: int = 4, backbone: str = "gpt2",
                backbone_args: dict[str, Any] | None = None, policy: str = "fpt",
                task_args: dict[str, Any] | None = None, version: str = "1", profile: str = "smoke",
                curve: list[tuple[int, float]] | None = None, error: str | None = None) -> CellResult:
    task_args = task_args or {}
    backbone_args = dict(TINY if backbone_args is None else backbone_args)
    hp = TrainHParams(steps=steps, batch_size=4, lr=lr, eval_every=max(1, steps // 2), precision="fp32")
    config = CellConfig(task=task, task_args=task_args, backbone=backbone, backbone_args=backbone_args,
                        policy=policy, seed=seed, profile=profile, hparams=hp)
    if curve is None:
        curve = [] if val is None else [(steps // 2 or 1, val / 2), (steps, val)]
    points = [CurvePoint(step=s, train_loss=0.7, val_accuracy=v) for s, v in curve]
    best = max(points, key=lambda p: p.val_accuracy or 0.0) if points else None
    best_step = next(p.step for p in points if p.val_accuracy == best.val_accuracy) if best else None
    ran = steps if status == "ok" else (curve[-1][0] if curve else 0)
    return CellResult(
        cell=CellInfo(task=task, task_version=version, task_args=task_args,
                      protocol=str(task_args.get("protocol", "default")), backbone=backbone,
                      backbone_args=backbone_args, policy=policy, seed=seed, profile=profile,
                      hparams=hp.model_dump()),
        status=status,  # type: ignore[arg-type]
        error=error or ({"diverged": "non-finite training loss (nan) at step 3", "failed": "boom"}.get(status)),
        error_kind="user" if status == "failed" else None,
        metrics=Metrics(test_accuracy=test, test_accuracy_final=test, val_accuracy=best.val_accuracy if best else None,
                        val_accuracy_final=points[-1].val_accuracy if points else None, best_step=best_step,
                        train_loss=0.7, curve=points),
        parameters=Parameters(total=1000, trainable=100, trainable_reachable=90, trainable_fraction=0.1,
                              by_role={"output": {"total": 100, "trainable": 100}}),
        timing=Timing(wall_seconds=1.0, train_seconds=0.5, eval_seconds=0.1, steps=ran, steps_per_second=8.0,
                      samples_per_second=32.0, tokens_per_second=320.0),
        provenance=Provenance(
            harness_version="0.1.0", plugins={"bits": "0.1.0"}, python="3.11", torch="2.14.1", transformers="5.24",
            platform="test", git_hash=None, device="cpu (test)", precision="fp32", config_hash=config.config_hash(),
            seeds={"cell": seed, "python": derive_seed(seed, "python"), "numpy": derive_seed(seed, "numpy") % 2**32,
                   "torch": derive_seed(seed, "torch"), "data": derive_seed(seed, "data")},
            created_at="2026-01-01T00:00:00+00:00"),
    )


def write(root: Path, result: CellResult) -> Path:
    """Write ``result`` where the runner would have written it."""
    c = result.cell
    config = CellConfig(task=c.task, task_args=c.task_args, backbone=c.backbone, backbone_args=c.backbone_args,
                        policy=c.policy, policy_args=c.policy_args, seed=c.seed, profile=c.profile,
                        hparams=TrainHParams(**c.hparams))
    path = result_path(root, config)
    write_result(path, result)
    return path


TWO_ROWS = SuiteSpec(
    name="two_rows", description="a test suite: FPT vs full on the bit tasks",
    cells=[SuiteCell(task=t, label=label, policy=policy, backbone_args=TINY)
           for label, policy in (("FPT", "fpt"), ("Full", "full")) for t in ("bit_memory", "bit_xor")],
    reference={"FPT": {"bit_memory": 100.0, "bit_xor": 100.0}, "Full": {"bit_xor": 100.0}},
    reference_marks={"Full": {"bit_xor": "†"}},
    source="a test",
)


class _PlantedTask:
    """A task plugin whose description carries markup (for the escaping tests)."""

    def __init__(self) -> None:
        from fpt_bench import Continuous, OutputSpec, TaskSpec

        self.spec = TaskSpec(name="planted", description='<script>document.title="pwned"</script> a & b',
                             input=Continuous(dim=1), max_len=4, output=OutputSpec(n_classes=2))


class _TestPlugin:
    @hookimpl
    def fpt_bench_register_suites(self, registry: Any) -> None:
        registry.add(TWO_ROWS, name=TWO_ROWS.name)

    @hookimpl
    def fpt_bench_register_tasks(self, registry: Any) -> None:
        registry.add(_PlantedTask())


def test_host() -> Host:
    """The installed plugins plus the test suite and a task with a planted ``<script>`` in its description."""
    host = Host(strict=True).load_entry_points()
    host.register(_TestPlugin(), "leaderboard-tests")
    return host


test_host.__test__ = False  # type: ignore[attr-defined]  # not a test
