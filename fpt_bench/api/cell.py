"""A cell: one experiment, (task, backbone, freeze policy, seed, profile) with everything resolved."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ConfigDict

from fpt_bench.api.hparams import TrainHParams
from fpt_bench.api.options import Strict


class CellConfig(Strict):
    """One experiment: (task, backbone, freeze policy, seed, profile) with everything resolved.

    Its hash names its result file; the device is not part of it (a cell is the same cell on any device).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    task_args: dict[str, Any] = {}
    backbone: str
    backbone_args: dict[str, Any] = {}
    policy: str
    policy_args: dict[str, Any] = {}
    seed: int
    profile: str
    hparams: TrainHParams

    def config_hash(self) -> str:
        """Hash of the values that differ from their defaults: a field added later with a default that keeps
        the old behaviour leaves every existing cell's hash (and result path) unchanged."""
        blob = json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def label(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.backbone_args.items()))
        bb = f"{self.backbone}[{args}]" if args else self.backbone
        return f"{self.task} / {bb} / {self.policy} / seed {self.seed} / {self.profile}"
