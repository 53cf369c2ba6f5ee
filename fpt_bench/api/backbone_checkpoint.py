"""Harness backbone checkpoints: a trained backbone saved as safetensors, loadable by another cell.

The file holds the backbone module's ``state_dict`` (shared tensors stored once) and, in the safetensors
metadata, what is needed to rebuild the module without its weights and to say where the weights came from:

- ``format``: ``fpt-bench-backbone``, ``format_version``: ``1``
- ``backbone``: the backbone name that saved it; ``architecture``: JSON from ``BackboneModule.architecture()``
- ``origin``: JSON of ``BackboneModule.provenance()`` (where the weights the cell started from came from)
- ``cell``: JSON of the saving cell (task, policy, seed, config hash, the step whose parameters were kept)

The runner writes these files (``--save-backbone``); backbones read them through ``read_backbone_checkpoint``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpt_bench.api import checkpoint_schema
from fpt_bench.api.errors import CorruptFileError, UserError

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    import torch
    from torch import nn

FORMAT = "fpt-bench-backbone"
FORMAT_VERSION = "1"
SUFFIX = ".backbone.safetensors"


def backbone_path(result_file: Path) -> Path:
    """Where ``--save-backbone`` puts the backbone of the cell whose result is ``result_file``."""
    return Path(result_file).with_suffix(SUFFIX)


def merged_backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The backbone's state with every adapter merged into the weight it adapts.

    An adapter module under ``model.adapters`` takes part when it has a method ``merged_delta()`` returning
    ``(backbone parameter name, tensor to add)``; adapters without it are not saved.
    """
    backbone = model.backbone  # type: ignore[attr-defined]
    state = dict(backbone.state_dict())  # detached views; merging makes new tensors, never writes in place
    for adapter in getattr(model, "adapters", {}).values():
        merge = getattr(adapter, "merged_delta", None)
        if merge is not None:
            name, delta = merge()
            state[name] = state[name] + delta.to(state[name].dtype)
    return state


def save_backbone(model: nn.Module, path: Path, backbone: str, cell: dict[str, Any]) -> Path:
    """Save ``model.backbone`` (adapters merged) to ``path`` with the metadata above. Written atomically."""
    from safetensors.torch import save

    from fpt_bench.infra.atomic import atomic_write

    module = model.backbone  # type: ignore[attr-defined]
    state = merged_backbone_state(model)
    # tensors that share storage (tied weights) are stored once, under the name state_dict() lists first
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen and tensor.numel() > 0:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.contiguous().cpu()
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "backbone": backbone,
        "architecture": json.dumps(module.architecture(), sort_keys=True),
        "origin": json.dumps(module.provenance(), sort_keys=True, default=str),
        "cell": json.dumps(cell, sort_keys=True, default=str),
        "aliases": json.dumps(aliases, sort_keys=True),
    }
    blob = save(tensors, metadata=metadata)
    atomic_write(path, lambda handle: handle.write(blob))
    return path


@dataclass
class BackboneCheckpoint:
    """A harness backbone checkpoint, read back: metadata decoded, tensors loaded on demand."""

    path: Path
    backbone: str
    architecture: dict[str, Any]
    origin: dict[str, Any]
    cell: dict[str, Any]
    aliases: dict[str, str]
    tensors: checkpoint_schema.Header = field(default_factory=dict)  # name -> (shape, dtype), from the header

    def build(self, make: Callable[[], checkpoint_schema.M]) -> checkpoint_schema.M:
        """The module ``make()`` builds from ``architecture``, with this checkpoint's weights. ``make`` is first
        run on the meta device and its state must match the file's tensors (names, shapes), so a forged
        architecture allocates nothing and is one clear error."""
        module = checkpoint_schema.build_checked(self.path, self.backbone, self.tensors, self.aliases, make)
        self.load_into(module)
        return module

    def state_dict(self) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        state = load_file(str(self.path))
        for alias, name in self.aliases.items():
            state[alias] = state[name]
        return state

    def load_into(self, module: nn.Module) -> None:
        """Copy the weights into ``module`` (built from ``architecture``); every key and shape must match."""
        if self.tensors:
            checkpoint_schema.check_fits(self.path, self.backbone, self.tensors, self.aliases, module)
        state = self.state_dict()
        missing, unexpected = module.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise UserError(
                f"backbone checkpoint {self.path} does not fit the module built from its own architecture "
                f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}); was it saved by another "
                f"version of the {self.backbone!r} backbone?"
            )

    def sha256(self) -> str:
        with open(self.path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()


def read_backbone_checkpoint(path: Path) -> BackboneCheckpoint:
    """Read the metadata of a harness backbone checkpoint; a missing or foreign file is one clear error."""
    from safetensors import safe_open

    from fpt_bench.infra.safe_read import open_regular

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"backbone checkpoint {path} does not exist (save one with `fpt-bench run --save-backbone`)")
    open_regular(path, "backbone checkpoint").close()  # a fifo or a device is refused before safetensors maps it
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {name: (tuple(handle.get_slice(name).get_shape()), str(handle.get_slice(name).get_dtype()))
                       for name in handle.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a broken header
        raise CorruptFileError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is a safetensors file but not a backbone saved by fpt-bench (no {FORMAT!r} tag); "
                        f"pretrained Hugging Face weights go in source=DIR instead")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: backbone checkpoint format {meta.get('format_version')!r} is not supported "
                        f"(this fpt-bench reads version {FORMAT_VERSION})")
    parsed = checkpoint_schema.parse_metadata(path, meta)
    checkpoint_schema.check_tensors(path, tensors, parsed.aliases, parsed.architecture)
    return BackboneCheckpoint(path=path.resolve(), backbone=parsed.backbone, architecture=parsed.architecture,
                              origin=parsed.origin, cell=parsed.cell, aliases=parsed.aliases, tensors=tensors)
