"""Bit Memory and Bit XOR: shapes, patching, targets, determinism, fixed evaluation sets."""

from __future__ import annotations

from pathlib import Path

import torch

from fpt_bench.api.seeding import generator
from fpt_bench.host.manager import get_host


def task(name: str):
    t = get_host().tasks.get(name)
    return t, t.options({})


def test_bit_memory_shapes_and_query_consistency() -> None:
    t, opts = task("bit_memory")
    batch = t.sample(4, generator(1), opts)
    assert batch.x.shape == (4, 120, 50) and batch.y.shape == (4, 1000)
    strings = batch.x.reshape(4, 6, 1000)
    assert set(strings[:, :5].unique().tolist()) == {-1.0, 1.0}
    query, target = strings[:, 5], batch.y.float() * 2 - 1
    shown = query != 0
    assert torch.equal(query[shown], target[shown])  # unmasked query bits are the target's
    assert 0.4 < (~shown).float().mean() < 0.6  # about half the bits are zeroed
    for i in range(4):  # the target is one of the five stored strings
        assert any(torch.equal(strings[i, j], target[i]) for j in range(5))


def test_bit_memory_readout_layout_matches_patches() -> None:
    t, _ = task("bit_memory")
    out = t.spec.output
    assert (out.readout, out.k, out.per_position, out.n_classes) == ("last_k", 20, 50, 2)


def test_bit_xor_targets() -> None:
    t, opts = task("bit_xor")
    batch = t.sample(64, generator(3), opts)
    assert batch.x.shape == (64, 10, 1) and batch.y.shape == (64, 5)
    a, b = batch.x[:, :5, 0].long(), batch.x[:, 5:, 0].long()
    assert torch.equal(batch.y, a ^ b)


def test_sampling_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    t, opts = task("bit_xor")
    assert torch.equal(t.sample(8, generator(5), opts).x, t.sample(8, generator(5), opts).x)
    assert not torch.equal(t.sample(64, generator(5), opts).x, t.sample(64, generator(6), opts).x)


def test_evaluation_sets_are_fixed_and_distinct(tmp_path: Path) -> None:
    t, opts = task("bit_memory")
    val, test = t.load("val", opts, tmp_path), t.load("test", opts, tmp_path)
    assert (len(val), len(test)) == (500, 1000)
    assert torch.equal(val.x, t.load("val", opts, tmp_path).x)
    assert not torch.equal(val.x[:10], test.x[:10])
    assert test.info == {"generator_seed": 2_000_003, "examples": 1000}
