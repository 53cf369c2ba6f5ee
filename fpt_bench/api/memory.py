"""Sizes bounded by what the machine can hold, before anything is allocated.

A size option (``n_layers=99999999999``, ``n_embd=...``, ``hidden_size=...``) must not allocate until the machine
runs out of memory: :func:`build_within_memory` builds a module first on PyTorch's ``meta`` device (shapes only,
no memory), adds up its parameter and buffer bytes and compares them with the memory free here; a module that
cannot fit is one ``UserError`` naming its size, and nothing is allocated. Backbones call it around building from
a config (``TransformerBackbone`` does for ``weights=random``); the runner checks the whole cell (parameters,
optimizer state, the batch and its activations) against the device before the first step
(``fpt_bench.cells.sizes``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from fpt_bench.api.errors import UserError
from fpt_bench.infra.memory import available_memory, gib

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    from torch import nn

M = TypeVar("M", bound="nn.Module")


def module_bytes(module: nn.Module) -> int:
    """Bytes of ``module``'s parameters and buffers (shared tensors once); works on the meta device."""
    seen: set[int] = set()
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    return total


def build_within_memory(make: Callable[[], M], what: str, advice: str = "choose smaller sizes") -> M:
    """``make()``, after a first build on the meta device showed that its parameters fit in the CPU memory free
    here (modules are built on the CPU, then moved); a UserError naming ``what`` when they do not, or when the
    library refuses the sizes (a ValueError). A module that cannot be built on the meta device for another reason
    is built directly (the check is skipped, never the build)."""
    import torch

    try:
        with torch.device("meta"):
            probe = make()
    except UserError:
        raise
    except ValueError as exc:  # the library refuses the sizes (a width its heads do not divide, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"{what} cannot be built: {first}") from None
    except Exception:  # noqa: BLE001 - a module whose code needs real tensors: nothing to measure in advance
        probe = None
    if probe is not None:
        need = module_bytes(probe)
        del probe
        free = available_memory()
        if free is not None and need > free:
            raise UserError(f"{what} would hold {gib(need)} of parameters, more than the {gib(free)} of memory free "
                            f"here; {advice}")
    return make()
