"""What a harness backbone checkpoint must hold before anything is built from it (``backbone_checkpoint.py``).

A checkpoint file may come from anywhere (``weights=checkpoint:PATH``). Its safetensors metadata is validated
against :class:`BackboneMetadata`; its tensors (names, shapes, dtypes, read from the header without loading
them) against the aliases and the architecture; and the module its architecture describes is first built on
PyTorch's ``meta`` device (nothing allocated) and must hold exactly the file's tensors, with the same shapes,
before the real module is built and the weights copied in. Every refusal is a ``CorruptFileError`` naming the
file and the first problems.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fpt_bench.api.errors import CorruptFileError, UserError

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    from torch import nn

M = TypeVar("M", bound="nn.Module")
MAX_NESTING = 32  # JSON metadata nested deeper than this is not a backbone's config
# the module built from the metadata may hold more than the file (buffers such as an attention mask, rows added
# later) but not unboundedly more: a forged size must not allocate memory the file never paid for
MEMORY_FACTOR, MEMORY_SLACK = 4, 256 << 20


class BackboneMetadata(BaseModel):
    """The safetensors metadata of a harness backbone checkpoint (each value a JSON string but the first four)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    format: Literal["fpt-bench-backbone"]
    format_version: Literal["1"]
    backbone: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    architecture: dict[str, Any]
    origin: dict[str, Any] = {}
    cell: dict[str, Any] = {}
    aliases: dict[str, str] = {}


class Architecture(BaseModel):
    """The part of ``architecture`` every backbone shares; a backbone validates the rest with its own subclass."""

    model_config = ConfigDict(extra="allow", strict=True)
    kind: str = Field(min_length=1, max_length=100)


def brief(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}" for e in exc.errors()[:3]]
    return "; ".join(parts) + (f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else "")


def _depth(value: Any, limit: int) -> int:
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def parse_metadata(path: Path, meta: dict[str, str]) -> BackboneMetadata:
    """The metadata, JSON fields decoded and the whole validated; CorruptFileError saying what is wrong."""
    decoded: dict[str, Any] = dict(meta)
    for key in ("architecture", "origin", "cell", "aliases"):
        if key in decoded:
            try:
                decoded[key] = json.loads(decoded[key])
            except (ValueError, TypeError, RecursionError) as exc:
                raise CorruptFileError(f"{path}: backbone metadata {key!r} is not JSON ({exc})") from None
            if _depth(decoded[key], MAX_NESTING) > MAX_NESTING:
                raise CorruptFileError(f"{path}: backbone metadata {key!r} is nested more than {MAX_NESTING} deep")
    try:
        parsed = BackboneMetadata.model_validate(decoded)
        Architecture.model_validate(parsed.architecture)
    except ValidationError as exc:
        raise CorruptFileError(f"{path}: broken fpt-bench backbone metadata ({brief(exc)})") from None
    return parsed


Header = dict[str, tuple[tuple[int, ...], str]]  # tensor name -> (shape, safetensors dtype)


def check_tensors(path: Path, tensors: Header, aliases: dict[str, str], architecture: dict[str, Any]) -> None:
    """The file's tensors agree with its aliases, and no layer count in the architecture exceeds the number of
    tensors (a forged depth would build millions of modules before anything else could be checked)."""
    problems = [f"alias {a!r} names a stored tensor" for a in aliases if a in tensors]
    problems += [f"alias {a!r} -> {t!r}, which is not stored" for a, t in aliases.items() if t not in tensors]
    if not tensors:
        problems.append("it holds no tensors")
    limit = len(tensors) + len(aliases)
    problems += [f"architecture {key} = {value} layers, but the file holds only {limit} tensors"
                 for key, value in _counts(architecture, "architecture", "layer") if value > limit]
    # a classification head's label count is not the backbone's, yet transformers builds a label map of that size
    # from it (num_labels = 4,000,000: gigabytes before anything else is checked)
    problems += [f"architecture {key} = {value} labels (at most {MAX_LABELS})"
                 for key, value in _counts(architecture, "architecture", "label", sizes=True) if value > MAX_LABELS]
    if problems:
        raise CorruptFileError(f"{path}: not a consistent backbone checkpoint: {'; '.join(problems[:3])}")


MAX_LABELS = 100_000


def _counts(value: Any, where: str, word: str, sizes: bool = False) -> list[tuple[str, int]]:
    """(path, count) for every integer under a key that contains ``word`` (with ``sizes``: also the length of a
    dict or list there), at any depth of ``value``."""
    found: list[tuple[str, int]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}"
            if word in str(key).lower():
                if isinstance(item, int) and not isinstance(item, bool):
                    found.append((here, item))
                elif sizes and isinstance(item, dict | list):
                    found.append((here, len(item)))
            found += _counts(item, here, word, sizes)
    return found


def build_checked(path: Path, backbone: str, tensors: Header, aliases: dict[str, str],
                  make: Callable[[], M]) -> M:
    """``make()`` built first on the meta device, compared with the file's tensors, then built for real."""
    import torch

    try:
        with torch.device("meta"):
            probe = make()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a config that a library refuses: the file is what is wrong
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise CorruptFileError(f"{path}: its architecture metadata does not build a {backbone!r} backbone "
                               f"({type(exc).__name__}: {first})") from None
    check_fits(path, backbone, tensors, aliases, probe)
    return make()


def check_fits(path: Path, backbone: str, tensors: Header, aliases: dict[str, str], module: nn.Module) -> None:
    """Every tensor of ``module``'s state is in the file with the same shape (and kind of dtype), and nothing
    else is; the module is not much larger than the file."""
    stored = dict(tensors)
    stored.update({alias: tensors[target] for alias, target in aliases.items() if target in tensors})
    expected = {name: (tuple(t.shape), t.dtype) for name, t in module.state_dict().items()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CorruptFileError(
            f"{path}: does not fit the module built from its own architecture (missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}); was it saved by another version of the {backbone!r} backbone?")
    wrong = [f"{name} is {list(stored[name][0])} in the file, {list(shape)} in the module"
             for name, (shape, _) in expected.items() if stored[name][0] != shape]
    wrong += [f"{name} is {stored[name][1]} in the file, {dtype} in the module"
              for name, (_, dtype) in expected.items() if _is_float(stored[name][1]) != dtype.is_floating_point]
    if wrong:
        raise CorruptFileError(f"{path}: tensors do not match its architecture: {'; '.join(wrong[:3])}"
                               + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""))
    file_bytes = sum(math.prod(shape) * _itemsize(dtype) for shape, dtype in tensors.values())
    module_bytes = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    if module_bytes > MEMORY_FACTOR * file_bytes + MEMORY_SLACK:
        raise CorruptFileError(f"{path}: its architecture builds a module of {module_bytes} bytes from "
                               f"{file_bytes} bytes of tensors (a forged size?)")


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("F", "BF"))


def _itemsize(dtype: str) -> int:
    digits = "".join(c for c in dtype.split("_")[0] if c.isdigit())
    return max(int(digits) // 8, 1) if digits else 1
