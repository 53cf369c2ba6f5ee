"""Weight sources of transformer backbones (``--backbone-args weights=...``), shared by every backbone through
:class:`fpt_bench.api.transformer.TransformerBackbone` (public: a third-party backbone uses the same functions).

- ``pretrained``: ``from_pretrained`` on a hub id or a local directory (``trust_remote_code`` stays off); offline
  and not cached, one clear error says how to get the files here.
- ``random``: initialised from the config alone; no weight file is read or downloaded.
- ``stats``: every tensor drawn from a Gaussian with the mean and std of the same pretrained tensor (Lu et al.
  2021, Table 9: "statistics-matched" initialisation).
- ``checkpoint:PATH``: a backbone saved by the harness (``fpt-bench run --save-backbone``), rebuilt from the
  architecture stored in the file and loaded whole.
- ``result:RESULT_JSON``: the backbone a finished cell saved, found through its result file.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from fpt_bench.api import availability
from fpt_bench.api.backbone_checkpoint import SUFFIX, BackboneCheckpoint, read_backbone_checkpoint
from fpt_bench.api.checkpoint_schema import Architecture, brief
from fpt_bench.api.errors import CorruptFileError, UserError
from fpt_bench.infra.safe_read import child_path

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    import torch
    from torch import nn

KINDS = ("pretrained", "random", "stats", "checkpoint", "result")
WEIGHTS_HELP = ("pretrained | random (config only) | stats (Gaussian per tensor, pretrained mean/std) | "
                "checkpoint:PATH (a backbone saved with --save-backbone) | result:RESULT_JSON")


@dataclass(frozen=True)
class WeightSource:
    kind: str  # pretrained | random | stats | checkpoint | result
    path: Path | None = None

    @property
    def needs_pretrained(self) -> bool:
        return self.kind in ("pretrained", "stats")

    @property
    def from_checkpoint(self) -> bool:
        return self.kind in ("checkpoint", "result")


def parse_weights(value: str, allowed: tuple[str, ...] = KINDS) -> WeightSource:
    """``pretrained`` / ``random`` / ``stats`` / ``checkpoint:PATH`` / ``result:PATH`` -> a WeightSource.

    Raises ValueError (pydantic turns it into a clear option error) for anything else."""
    kind, sep, rest = str(value).partition(":")
    if kind in ("checkpoint", "result"):
        if not rest:
            raise ValueError(f"weights={kind}: needs a path, e.g. weights={kind}:/path/to/file")
        source = WeightSource(kind, Path(rest).expanduser())
    elif sep or kind not in ("pretrained", "random", "stats"):
        raise ValueError(f"weights={value!r}: use {' | '.join(_shown(allowed))}")
    else:
        source = WeightSource(kind)
    if source.kind not in allowed:
        raise ValueError(f"weights={value!r} is not available for this backbone; use {' | '.join(_shown(allowed))}")
    return source


def _shown(allowed: tuple[str, ...]) -> list[str]:
    return [f"{k}:PATH" if k in ("checkpoint", "result") else k for k in allowed]


# ------------------------------------------------------------------------------------ pretrained
hub_cache_dir = availability.hub_cache_dir
_offline = availability.offline_env


def pretrained_error(source: str, exc: BaseException, what: str = "pretrained weights", alternative: str = "") \
        -> UserError:
    """One clear message: where we looked, why it failed, how to get the files here (and ``alternative``: what
    else works without them, when something does)."""
    is_dir = Path(source).expanduser().is_dir()
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    if "ignore_mismatched_sizes" in first:  # transformers points at a report that stays silenced here
        first = "the shapes of its weights do not match its config.json"
    if is_dir:
        where = f"the local directory {source}"
        fix = ("it needs config.json and model.safetensors as written by save_pretrained (a pickled "
               "pytorch_model.bin is never read from a folder: convert it to safetensors where you trust it)")
    else:
        offline = " (offline: HF_HUB_OFFLINE is set)" if _offline() else ""
        where = f"the Hugging Face cache {hub_cache_dir()} or the hub (id {source!r}){offline}"
        fix = (f"to work offline, run `hf download {source}` where there is internet and copy the cache folder "
               f"(models--{source.replace('/', '--')}) into {hub_cache_dir()}, or save the model with "
               f"save_pretrained and pass --backbone-args source=/path/to/that/dir")
    extra = f". {alternative}" if alternative else ""
    return UserError(f"could not load {what} from {where}: {first}. {fix}{extra}")


WEIGHT_FILES = availability.WEIGHT_FILES


def _dtype_kwargs(dtype: torch.dtype | None) -> dict[str, Any]:
    import torch
    import transformers
    from packaging.version import Version

    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {key: torch.float32 if dtype is None else dtype}


def resolve_source(source: str) -> str:
    path = Path(source).expanduser()
    return str(path) if path.is_dir() else source


def load_config(source: str, install: str = "", alternative: str = "") -> Any:
    """The config alone (``config.json``) of a hub id or local directory; no weights are read. Without the file
    here and without a hub to ask, one error at once (``availability.unavailable_reason``), never a retry loop."""
    from transformers import AutoConfig

    reason = availability.unavailable_reason(source, needs_weights=False, install=install, alternative=alternative)
    if reason is not None:
        raise UserError(reason)
    try:
        with _quiet_transformers():
            return AutoConfig.from_pretrained(resolve_source(source), trust_remote_code=False,
                                              local_files_only=availability.local_files_only(source))
    except (OSError, ValueError, KeyError) as exc:
        raise pretrained_error(source, exc, "the model config", alternative) from None


def load_pretrained(model_class: Any, source: str, config_overrides: dict[str, Any], sdpa: bool = True,
                    dtype: torch.dtype | None = None, install: str = "", alternative: str = "",
                    **model_kwargs: Any) -> nn.Module:
    """``from_pretrained`` for a hub id or a local directory in ``dtype`` (float32 when None, unless a backbone chooses
    its compute dtype), ``trust_remote_code=False``; one clear error when the weights are missing, at once when they
    are not here and the hub cannot be asked."""
    reason = availability.unavailable_reason(source, needs_weights=True, install=install, alternative=alternative)
    if reason is not None:
        raise UserError(reason)
    local = resolve_source(source)
    try:
        with _quiet_transformers():
            model, info = model_class.from_pretrained(
                local, trust_remote_code=False, attn_implementation="sdpa" if sdpa else "eager",
                output_loading_info=True, local_files_only=availability.local_files_only(source),
                **_dtype_kwargs(dtype), **config_overrides, **model_kwargs,
                # a local folder: safetensors only (a pickle is never read); the hub: safetensors when it has
                # them, else transformers' weights_only loading
                **({"use_safetensors": True} if local != source or Path(local).is_dir() else {}),
            )
    except (OSError, ValueError, pickle.UnpicklingError, RuntimeError) as exc:  # RuntimeError: tensor shapes
        raise pretrained_error(source, exc, alternative=alternative) from None
    # transformers' own load report (a table, also for checkpoint keys this encoder-only model does not use) is
    # silenced above; what matters for a frozen backbone is a weight the checkpoint lacks: it would be random.
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        print(f"fpt-bench: warning: {source} has no weights for {len(missing)} parameter(s) of "
              f"{model_class.__name__}, which keep their random initialisation: {shown}", file=sys.stderr)
    return model


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers at error verbosity and without its progress bars, restored afterwards."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def model_from_config(model_class: Any, config: Any, sdpa: bool = True, **model_kwargs: Any) -> nn.Module:
    """A randomly initialised model from its config (transformers' own init); nothing is downloaded."""
    config._attn_implementation = "sdpa" if sdpa else "eager"
    return model_class(config, **model_kwargs)


# ----------------------------------------------------------------------------------------- stats
def stats_init_(module: nn.Module) -> int:
    """Replace every parameter by a draw from N(mean, std) of its current (pretrained) values, per tensor.

    Uses the global torch generator (the runner seeds it from the cell seed). Tied tensors are drawn once.
    Returns the number of tensors redrawn."""
    import torch

    count = 0
    for param in module.parameters():
        values = param.detach().to(torch.float64)
        mean = values.mean().item()
        std = values.std().item() if values.numel() > 1 else 0.0
        with torch.no_grad():
            param.normal_(mean, std)
        count += 1
    return count


# ------------------------------------------------------------------------------------ checkpoints
def checkpoint_file(source: WeightSource) -> Path:
    """The safetensors file of ``checkpoint:PATH`` or of ``result:RESULT_JSON`` (its saved backbone)."""
    assert source.path is not None
    if source.kind == "checkpoint":
        return source.path
    from fpt_bench.results.store import read_result

    if not source.path.is_file():
        raise UserError(f"weights=result:{source.path}: no such result file")
    result = read_result(source.path)
    if not result.provenance.saved_backbone:
        raise UserError(f"result {source.path} has no saved backbone; rerun that cell with --save-backbone "
                        f"(finished cells rerun when their backbone file is missing)")
    name = result.provenance.saved_backbone
    if not name.endswith(SUFFIX):
        raise CorruptFileError(f"{source.path}: provenance.saved_backbone {name!r} is not a saved backbone's name "
                               f"(*{SUFFIX}); refusing to follow it")
    return child_path(source.path.parent, name, "provenance.saved_backbone", source.path)


def open_checkpoint(source: WeightSource, kind: str, schema: type[Architecture] | None = None) -> BackboneCheckpoint:
    """Read a harness backbone checkpoint and check it holds a backbone of ``kind`` (e.g. ``gpt2``) whose
    architecture fits ``schema`` (the backbone's own model of it)."""
    checkpoint = read_backbone_checkpoint(checkpoint_file(source))
    saved_kind = checkpoint.architecture.get("kind")
    if saved_kind != kind:
        raise UserError(f"{checkpoint.path} holds a {saved_kind or checkpoint.backbone!r} backbone (saved by backbone "
                        f"{checkpoint.backbone!r}); load it with --backbone {checkpoint.backbone}")
    if schema is not None:
        try:
            checkpoint.architecture = schema.model_validate(checkpoint.architecture).model_dump()
        except ValidationError as exc:
            raise CorruptFileError(f"{checkpoint.path}: its {kind} architecture metadata is broken "
                                   f"({brief(exc)})") from None
    return checkpoint


def checkpoint_provenance(checkpoint: BackboneCheckpoint) -> dict[str, Any]:
    return {
        "weights": "checkpoint", "checkpoint": str(checkpoint.path), "sha256": checkpoint.sha256(),
        "saved_by": checkpoint.cell, "saved_from_backbone": checkpoint.backbone, "origin": checkpoint.origin,
    }


def truncate_layers(parent: nn.Module, attribute: str, n_layers: int | None, what: str) -> int:
    """Keep the first ``n_layers`` modules of the ModuleList ``parent.<attribute>``; returns the depth kept."""
    layers = getattr(parent, attribute)
    if n_layers is None:
        return len(layers)
    if n_layers > len(layers):
        raise UserError(f"n_layers={n_layers}, but {what} has only {len(layers)} layers")
    from torch import nn

    setattr(parent, attribute, nn.ModuleList(list(layers)[:n_layers]))
    return n_layers

