"""An offline, seeded ListOps generator implementing Long Range Arena's algorithm (``lra_benchmarks/data/
listops.py``, Tay et al. 2020), written from its description.

A tree at depth ``d`` is a leaf (a digit) unless ``d < max_depth`` and a uniform draw is at most 0.25; then it
has ``randint(2, max_args)`` children one level deeper and an operator drawn uniformly from MIN, MAX, MED, SM.
Its length counts the operator and ``]`` (2) plus its children's lengths; parentheses are not counted. Trees
are kept when ``min_length < length < max_length`` and deduplicated. The random calls are LRA's, in LRA's
order, on a ``random.Random(seed)``: the same seed gives the same trees on every platform. (LRA kept the trees
in a Python ``set``, so its split order depended on the process's hash seed; here the order is the order of
generation.)
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from fpt_bench.api.files import atomic_write

MIN, MAX, MED, SUM_MOD, END = "[MIN", "[MAX", "[MED", "[SM", "]"
OPERATORS = (MIN, MAX, MED, SUM_MOD)
VALUES = range(10)
VALUE_P = 0.25
SPLITS = {"train": 96_000, "val": 2_000, "test": 2_000}

Tree = Any  # an int leaf, or nested pairs (((op, a1), a2) ..., END)


def generate_tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> tuple[Tree, int]:
    r = rng.random() if depth < max_depth else 1.0
    if r > VALUE_P:
        return rng.choice(VALUES), 1
    length = 2
    children = []
    for _ in range(rng.randint(2, max_args)):
        child, child_length = generate_tree(rng, depth + 1, max_depth, max_args)
        children.append(child)
        length += child_length
    tree: Tree = (rng.choice(OPERATORS), children[0])
    for child in children[1:]:
        tree = (tree, child)
    return (tree, END), length


def to_string(tree: Tree) -> str:
    """``( ( ( [MAX 2 ) 9 ) ] )`` -- the printed form with LRA's binarising parentheses."""
    if isinstance(tree, tuple):
        return f"( {to_string(tree[0])} {to_string(tree[1])} )"
    return str(tree)


def evaluate(values: list[int], op: str) -> int:
    if op == MIN:
        return min(values)
    if op == MAX:
        return max(values)
    if op == MED:  # int(np.median(values)): the mean of the two middle values, truncated, for an even count
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else int((ordered[mid - 1] + ordered[mid]) / 2)
    if op == SUM_MOD:
        return sum(values) % 10
    raise ValueError(f"unknown operator {op!r}")


def to_value(tree: Tree) -> int:
    """The value of a tree (a digit 0..9)."""
    if not isinstance(tree, tuple):
        return int(tree)
    node, args = tree[0], []
    while isinstance(node, tuple):  # ((((op, a1), a2), ...), ak): peel the arguments off
        args.append(node[1])
        node = node[0]
    op = node
    return evaluate([to_value(a) for a in reversed(args)], op)


def evaluate_expression(text: str) -> int:
    """The value of a printed ListOps expression (parentheses ignored)."""
    stack: list[list[Any]] = []
    result = None
    for token in text.split():
        if token in ("(", ")"):
            continue
        if token in OPERATORS:
            stack.append([token])
        elif token == END:
            op, *values = stack.pop()
            result = evaluate(values, op)
            if stack:
                stack[-1].append(result)
        else:
            value = int(token)
            if stack:
                stack[-1].append(value)
            else:
                result = value
    if stack or result is None:
        raise ValueError("unbalanced expression")
    return result


class _Draw:
    """One tree being drawn: its printed pieces (while it can still be kept) and its length."""

    __slots__ = ("rng", "max_depth", "max_args", "max_length", "length", "pieces", "live")

    def __init__(self, rng: random.Random, max_depth: int, max_args: int, max_length: int) -> None:
        self.rng, self.max_depth, self.max_args, self.max_length = rng, max_depth, max_args, max_length
        self.length, self.pieces, self.live = 0, [], True


def _node(d: _Draw, depth: int) -> int:
    """Draw a subtree with exactly :func:`generate_tree`'s random calls, printing it as :func:`to_string`
    would while the tree is still short enough to be kept (a longer one only consumes its draws)."""
    rng = d.rng
    if (rng.random() if depth < d.max_depth else 1.0) > VALUE_P:
        value = rng.choice(VALUES)
        d.length += 1
        if d.live:
            d.pieces.append(str(value))
        return value
    d.length += 2
    count = rng.randint(2, d.max_args)
    slot = len(d.pieces)
    if d.live:
        d.pieces.append("")
    values = []
    for _ in range(count):
        if d.live:
            d.pieces.append(" ")
        values.append(_node(d, depth + 1))
        if d.live:
            d.pieces.append(" )")
        if d.live and d.length >= d.max_length:
            d.live = False
    op = rng.choice(OPERATORS)
    if not d.live:
        return 0
    d.pieces[slot] = "( " * (count + 1) + op
    d.pieces.append(" ] )")
    return evaluate(values, op)


def iter_generate(seed: int, max_depth: int = 10, max_args: int = 10, min_length: int = 500,
                  max_length: int = 2000) -> Iterator[tuple[str, int, int]]:
    """Distinct expressions as (text, value, length without parentheses), in generation order, without end.

    The same trees as ``generate_tree(rng, 1, ...)`` drawn in a loop, kept when ``min_length < length <
    max_length`` and new; faster, because trees too long to keep are not printed or evaluated. Only a 16-byte
    digest of each kept text is remembered (to drop repeats), so memory does not grow with the texts."""
    rng = random.Random(seed)
    seen: set[bytes] = set()
    while True:
        d = _Draw(rng, max_depth, max_args, max_length)
        value = _node(d, 1)
        if min_length < d.length < max_length:
            text = "".join(d.pieces)
            digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
            if digest not in seen:
                seen.add(digest)
                yield text, value, d.length


def generate(n: int, seed: int, max_depth: int = 10, max_args: int = 10, min_length: int = 500,
             max_length: int = 2000) -> list[tuple[str, int, int]]:
    """The first ``n`` expressions of :func:`iter_generate`."""
    return list(itertools.islice(iter_generate(seed, max_depth, max_args, min_length, max_length), n))


def generate_reference(n: int, seed: int, max_depth: int = 10, max_args: int = 10, min_length: int = 500,
                       max_length: int = 2000) -> list[tuple[str, int, int]]:
    """:func:`generate` the slow way, through trees (kept to check the fast one against)."""
    rng = random.Random(seed)
    kept: dict[Tree, int] = {}
    while len(kept) < n:
        tree, length = generate_tree(rng, 1, max_depth, max_args)
        if min_length < length < max_length and tree not in kept:
            kept[tree] = length
    return [(to_string(tree), to_value(tree), length) for tree, length in kept.items()]


def write_splits(out_dir: Path, seed: int, sizes: dict[str, int] | None = None) -> dict[str, Path]:
    """Write ``basic_{train,val,test}.tsv`` (LRA's layout: header ``Source<TAB>Target``) into ``out_dir``.

    Streamed: each expression goes to its file as it is drawn (the splits take consecutive runs of the one
    sequence, in the order of ``sizes``), so memory stays flat however many are asked for. Each file is written
    atomically, the test file last, so a folder with ``basic_test.tsv`` is complete."""
    sizes = sizes or SPLITS
    rows = iter_generate(seed)
    out_dir = Path(out_dir)
    order = list(sizes)
    drawn: dict[str, list[tuple[str, int]]] = {}  # the splits drawn before the test split's turn comes

    def write(split: str, source: Iterator[tuple[str, int]]) -> Path:
        def fill(handle: IO[bytes]) -> None:
            text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
            writer = csv.writer(text, delimiter="\t", lineterminator="\n")
            writer.writerow(["Source", "Target"])
            writer.writerows(source)
            text.flush()
            text.detach()

        path = out_dir / f"basic_{split}.tsv"
        atomic_write(path, fill)
        return path

    paths = {}
    for split in order:
        chunk = ((text, value) for text, value, _ in itertools.islice(rows, sizes[split]))
        if split == "test" and split != order[-1]:
            drawn[split] = list(chunk)  # test is written last; it is 2% of the set
            continue
        paths[split] = write(split, chunk)
    for split, chunk_rows in drawn.items():
        paths[split] = write(split, iter(chunk_rows))
    return paths
