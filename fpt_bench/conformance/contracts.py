"""The contracts a plugin's components must keep, as functions that raise ``ContractError`` saying what is wrong.

``fpt-bench check-plugin`` (``fpt_bench/conformance/check.py``) runs them on each component at smoke size.
"""

from __future__ import annotations

from typing import Any

import torch

from fpt_bench.api.backbone_module import BackboneModule
from fpt_bench.api.roles import Role
from fpt_bench.api.specs import Continuous, Readout, TaskSpec
from fpt_bench.api.task import SplitData


class ContractError(Exception):
    """A component breaks its contract (the message says which and how)."""


def _shape(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def check_examples(spec: TaskSpec, x: Any, y: Any, lengths: Any, what: str) -> str:
    """``x``, ``y`` and ``lengths`` (a batch or a whole split) agree with ``spec``; returns a description."""
    check_inputs(spec, x, lengths, what)
    check_labels(spec, y, x.shape[0], what)
    return f"x {_shape(x)}, y {_shape(y)}" + ("" if lengths is None else ", with lengths")


def check_inputs(spec: TaskSpec, x: Any, lengths: Any, what: str) -> None:
    """``x`` and ``lengths`` of a batch or a split agree with ``spec`` (shape, dtype, token ids, length)."""
    if not isinstance(x, torch.Tensor):
        raise ContractError(f"{what}: x is {type(x).__name__}, not a torch.Tensor")
    n = x.shape[0] if x.dim() else 0
    if n == 0:
        raise ContractError(f"{what}: no examples")
    if isinstance(spec.input, Continuous):
        if x.dim() != 3 or x.shape[2] != spec.input.dim or not x.is_floating_point():
            raise ContractError(f"{what}: x is {_shape(x)}; continuous input of dim {spec.input.dim} needs "
                                f"(N, T, {spec.input.dim}) floats")
    else:
        if x.dim() != 2 or x.dtype != torch.long:
            raise ContractError(f"{what}: x is {_shape(x)}; token input needs (N, T) int64 token ids")
        low, high = int(x.min()), int(x.max())
        if low < 0 or high >= spec.input.vocab_size:
            raise ContractError(f"{what}: token ids span {low}..{high}, outside 0..{spec.input.vocab_size - 1}")
    length = x.shape[1]
    if not 1 <= length <= spec.max_len:
        raise ContractError(f"{what}: sequences are {length} long, spec.max_len is {spec.max_len}")
    out = spec.output
    if out.readout == Readout.LAST_K and out.k > length:
        raise ContractError(f"{what}: readout last_k reads {out.k} positions of sequences {length} long")
    if lengths is not None:
        if not isinstance(lengths, torch.Tensor) or tuple(lengths.shape) != (n,) or lengths.is_floating_point():
            raise ContractError(f"{what}: lengths must be an (N,) integer tensor, got {lengths!r:.60}")
        if int(lengths.min()) < 1 or int(lengths.max()) > length:
            raise ContractError(f"{what}: lengths span {int(lengths.min())}..{int(lengths.max())}, "
                                f"outside 1..{length}")


def check_labels(spec: TaskSpec, y: Any, n: int, what: str) -> None:
    """The labels ``y`` of ``n`` examples fit the task's objective (shape, dtype, range)."""
    if not isinstance(y, torch.Tensor):
        raise ContractError(f"{what}: y is {type(y).__name__}, not a torch.Tensor")
    try:
        spec.output.objective.check_labels(y, n, spec.output)
    except ValueError as exc:
        raise ContractError(f"{what}: {exc}") from None


HEAD = 64  # examples of a split checked as the model sees them (decoded); labels and lengths: every example


def check_split(spec: TaskSpec, split: Any, what: str) -> None:
    """A whole split as ``load`` returns it agrees with ``spec``: its first ``HEAD`` examples decoded as the model
    sees them (shapes, dtypes, token ids, length at most ``max_len``), every label, and every example's length."""
    if not isinstance(split, SplitData):
        raise ContractError(f"{what} returned {type(split).__name__}, not fpt_bench.SplitData")
    n = len(split) if isinstance(split.x, torch.Tensor) and split.x.dim() else 0
    if n == 0:
        raise ContractError(f"{what}: no examples")
    head = split.batch(torch.arange(min(n, HEAD), device=split.x.device))
    check_examples(spec, head.x, head.y, head.lengths, what)
    check_labels(spec, split.y, n, f"{what}, all {n} examples")
    if split.lengths is not None and int(split.lengths.max()) > spec.max_len:
        raise ContractError(f"{what}: sequences up to {int(split.lengths.max())} long, spec.max_len is "
                            f"{spec.max_len}")


def same_tensors(a: Any, b: Any, what: str) -> None:
    """Two results of the same seeded call are identical."""
    pairs = [(a, b)] if isinstance(a, torch.Tensor) else list(zip(a, b, strict=True))
    for left, right in pairs:
        if (left is None) != (right is None):
            raise ContractError(f"{what}: differs between two calls with the same seed")
        if left is None:
            continue
        if left.shape != right.shape or left.dtype != right.dtype or not torch.equal(left, right):
            raise ContractError(f"{what}: differs between two calls with the same seed (not deterministic)")


def check_module(module: Any, max_len: int) -> str:
    if not isinstance(module, BackboneModule):
        raise ContractError(f"build() returned {type(module).__name__}, not an fpt_bench.BackboneModule")
    hidden = getattr(module, "hidden_size", None)
    if not isinstance(hidden, int) or hidden <= 0:
        raise ContractError(f"hidden_size is {hidden!r}; set it to the width of the hidden states")
    if not isinstance(module.n_layers, int) or module.n_layers < 0:
        raise ContractError(f"n_layers is {module.n_layers!r}")
    if module.max_positions is not None and module.max_positions < max_len:
        raise ContractError(f"built for max_len={max_len} but max_positions is {module.max_positions}")
    n = sum(p.numel() for p in module.parameters())
    return f"hidden {hidden}, {module.n_layers} layer(s), {n:,} parameters"


def check_roles(module: BackboneModule) -> str:
    names = [name for name, _ in module.named_parameters()]
    roles = module.parameter_roles()
    missing = [n for n in names if n not in roles]
    if missing:
        raise ContractError(f"{len(missing)} parameter(s) have no role, e.g. {', '.join(missing[:3])}")
    stray = sorted(set(roles) - set(names))
    if stray:
        raise ContractError(f"parameter_roles() names parameters the module does not have: {', '.join(stray[:3])}")
    bad = [n for n, r in roles.items() if not isinstance(r, Role)]
    if bad:
        raise ContractError(f"roles must be fpt_bench.Role members; {bad[0]!r} has {roles[bad[0]]!r}")
    counts: dict[str, int] = {}
    for n in names:
        counts[roles[n].value] = counts.get(roles[n].value, 0) + 1
    return ", ".join(f"{role} {count}" for role, count in sorted(counts.items()))


def check_layers(module: BackboneModule) -> str:
    names = {name for name, _ in module.named_parameters()}
    layers = module.parameter_layers()
    stray = sorted(set(layers) - names)
    if stray:
        raise ContractError(f"parameter_layers() names parameters the module does not have: {', '.join(stray[:3])}")
    outside = {n: i for n, i in layers.items() if not isinstance(i, int) or not 0 <= i < module.n_layers}
    if outside:
        name = next(iter(outside))
        raise ContractError(f"{name} is in layer {outside[name]!r}, outside 0..{module.n_layers - 1}")
    if module.n_layers and not layers:
        raise ContractError(f"n_layers is {module.n_layers} but parameter_layers() is empty: "
                            "policies that select layers would train nothing")
    return f"{len(set(layers.values()))} layer(s) cover {len(layers)} parameters"


def check_used_numel(module: BackboneModule, seq_len: int) -> str:
    params = dict(module.named_parameters())
    used = module.used_numel(seq_len)
    for name, count in used.items():
        if name not in params:
            raise ContractError(f"used_numel() names {name!r}, which the module does not have")
        if not 0 <= count <= params[name].numel():
            raise ContractError(f"used_numel() says {count} elements of {name} ({params[name].numel()} in all)")
    return f"{len(used)} partly used parameter(s)" if used else "every parameter used whole"


def check_hidden(module: BackboneModule, embeds: torch.Tensor, out: Any) -> None:
    """``forward(embeds)`` returned hidden states of ``embeds``' shape: (B, T, hidden_size)."""
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(embeds.shape):
        got = _shape(out) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ContractError(f"forward returned {got}; expected {tuple(embeds.shape)} hidden states "
                            f"(B, T, hidden_size={module.hidden_size})")


def check_forward(module: BackboneModule, max_len: int) -> tuple[torch.Tensor, str]:
    """Hidden states have the input's shape and are finite; returns them (eval mode) and a description."""
    embeds = torch.randn(2, max_len, module.hidden_size, generator=torch.Generator().manual_seed(0))
    module.eval()
    with torch.no_grad():
        out = module(embeds, None)
    check_hidden(module, embeds, out)
    if not torch.isfinite(out).all():
        raise ContractError("forward returned non-finite values")
    return out, f"(2, {max_len}, {module.hidden_size}) -> same shape"


def check_causal(module: BackboneModule, max_len: int) -> str:
    """A backbone that declares ``causal = True``: changing later tokens never changes earlier hidden states."""
    if not module.causal:
        return "not causal (causal = False): every position may see every other"
    gen = torch.Generator().manual_seed(2)
    cut = max(1, max_len // 2)
    embeds = torch.randn(1, max_len, module.hidden_size, generator=gen)
    changed = embeds.clone()
    changed[:, cut:] = torch.randn(1, max_len - cut, module.hidden_size, generator=gen) * 3
    module.eval()
    with torch.no_grad():
        a, b = module(embeds, None), module(changed, None)
    if not torch.allclose(a[:, :cut], b[:, :cut], atol=1e-4, rtol=1e-4):
        diff = (a[:, :cut] - b[:, :cut]).abs().max().item()
        raise ContractError(f"causal = True, but changing positions {cut}.. changed the hidden states of earlier "
                            f"positions (by up to {diff:.3g}); set causal = False or mask attention to the future")
    return f"causal: positions 0..{cut - 1} unchanged when positions {cut}..{max_len - 1} change"


def check_trainable(model: Any, seq_len: int) -> str:
    """After a freeze policy: something trains, and a gradient reaches some of it."""
    counts = model.parameter_counts(seq_len)
    if counts["trainable"] == 0:
        raise ContractError(f"nothing trains on this backbone (0 of {counts['total']:,} parameters): a policy "
                            "must leave some parameter trainable (at least the output layer)")
    if counts["trainable_reachable"] == 0:
        trained = sorted(role for role, n in counts["by_role"].items() if n["trainable"])
        raise ContractError(f"only parameters no gradient reaches train (roles {', '.join(trained)}; the harness "
                            "feeds embeddings, so a backbone's token embedding is never used)")
    return f"trains {counts['trainable']:,} of {counts['total']:,} ({100 * counts['trainable_fraction']:.3g}%)"


def check_padding(module: BackboneModule, max_len: int) -> str:
    """What sits at padded positions never changes the hidden states of real positions."""
    gen = torch.Generator().manual_seed(1)
    real = max(1, max_len * 2 // 3)
    embeds = torch.randn(2, max_len, module.hidden_size, generator=gen)
    mask = torch.ones(2, max_len, dtype=torch.long)
    mask[1, real:] = 0
    changed = embeds.clone()
    changed[1, real:] = torch.randn(max_len - real, module.hidden_size, generator=gen) * 3
    module.eval()
    with torch.no_grad():
        a, b = module(embeds, mask), module(changed, mask)
    if not torch.allclose(a[1, :real], b[1, :real], atol=1e-4, rtol=1e-4):
        diff = (a[1, :real] - b[1, :real]).abs().max().item()
        raise ContractError(f"changing padded positions changed real positions' hidden states (by up to {diff:.3g}); "
                            "forward must honour the mask (1 = real token)")
    return f"real positions unchanged when {max_len - real} padded positions change"
