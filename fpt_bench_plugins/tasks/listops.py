"""ListOps (Nangia & Bowman 2018, as Long Range Arena's ``listops-1000``): evaluate a nested expression of
MIN, MAX, MED (median) and SM (sum mod 10) over digits; 10 classes.

Source (option ``source``): ``lra`` reads ``lra_release/listops-1000/basic_{train,val,test}.tsv``; ``generated``
reads a set written by the offline generator (``fpt-bench data generate listops --seed N``; generated on first
use when absent); ``auto`` (default) takes the LRA files when present, else the generated set; ``small`` draws
a small set in memory (384 expressions of 20-100 tokens, in a few hundredths of a second; what the ``smoke``
profile reads, so a smoke cell never generates or reads the 100,000-expression set). The result records which.

Tokenisations (option ``protocol``):
- ``default``: a fixed, sorted vocabulary with the brackets kept: pad 0, ``0``..``9`` = 1..10, ``[MAX`` 11,
  ``[MED`` 12, ``[MIN`` 13, ``[SM`` 14, ``]`` 15 (parentheses dropped: they carry no information); up to 2000
  tokens; the readout reads the last real token; test = the test file.
- ``paper-compat``: the reference code's alphanumeric tokens (brackets lost): pad 0, ``0``..``9`` = 1..10,
  ``MAX`` 11, ``MED`` 12, ``MIN`` 13, ``SM`` 14; cut to 512 tokens, padded to 512, the last position read
  (usually padding), and the validation file reported as test.
Tokenised splits are cached as Arrow files in the data directory.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import (
    CorruptFileError,
    DataFile,
    HParamOverrides,
    OutputSpec,
    PaperHParams,
    Readout,
    SplitData,
    TaskSpec,
    Tokens,
    UserError,
    hookimpl,
)
from fpt_bench.api.files import (
    RaggedTokens,
    TokenFileTask,
    check_files,
    files_provenance,
    open_regular,
    prepare_files,
    require_files,
)
from fpt_bench_plugins.tasks import listops_gen

if TYPE_CHECKING:  # numpy and torch are imported when a split is read: listing the plugins loads without them
    import numpy as np
    import torch

TOKENIZER_VERSION = 1
LRA_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"
LRA_DIR = "lra_release/listops-1000"
GENERATED_DIR = "listops-generated"
SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}

VOCAB = ["<pad>", *map(str, range(10)), "[MAX", "[MED", "[MIN", "[SM", "]"]
PAPER_VOCAB = ["<pad>", *map(str, range(10)), "MAX", "MED", "MIN", "SM"]
MAX_LEN, PAPER_MAX_LEN = 2000, 512

# Each token shrinks to one byte (operators to a control byte), then one table lookup maps bytes to ids.
_SHORT = ((b"[MIN", b"\x01"), (b"[MAX", b"\x02"), (b"[MED", b"\x03"), (b"[SM", b"\x04"))
_SHORT_ID = {short: op.decode() for op, short in _SHORT}
_CODES = b"".join(short for _, short in _SHORT)


def _table(vocab: list[str], brackets: bool) -> np.ndarray:
    import numpy as np

    table = np.full(256, 255, dtype=np.uint8)
    for i in range(10):
        table[ord(str(i))] = vocab.index(str(i))
    for short, op in _SHORT_ID.items():
        table[short[0]] = vocab.index(op if brackets else op[1:])
    if brackets:
        table[ord("]")] = vocab.index("]")
    return table


@functools.cache
def _tables() -> dict[str, np.ndarray]:
    """protocol -> byte-to-id table; made on first use (numpy is not imported to list the task)."""
    return {"default": _table(VOCAB, True), "paper-compat": _table(PAPER_VOCAB, False)}


def tokenize(source: bytes, protocol: str = "default") -> np.ndarray:
    """Token ids of one expression; ValueError naming the first token outside the vocabulary."""
    import numpy as np

    n_tokens = len(source.split())
    n_parens = source.count(b"(") + source.count(b")")
    compact = source if len(source.translate(None, _CODES)) == len(source) else b"\x00"
    for long, short in _SHORT:
        compact = compact.replace(long, short)
    compact = compact.translate(None, b"() \t\r")
    ids = _tables()["default"][np.frombuffer(compact, dtype=np.uint8)]
    if len(compact) != n_tokens - n_parens or (ids == 255).any():
        known = {"(", ")", *VOCAB[1:]}
        bad = next((t for t in source.decode(errors="replace").split() if t not in known), "?")
        raise ValueError(f"unknown token {bad!r}")
    if protocol == "paper-compat":
        compact = compact.replace(b"]", b"")
        ids = _tables()["paper-compat"][np.frombuffer(compact, dtype=np.uint8)][:PAPER_MAX_LEN]
    return ids


def read_tsv(path: Path, protocol: str = "default") -> RaggedTokens:
    """An LRA ListOps TSV file (header ``Source<TAB>Target``) as token ids and labels, read line by line (memory
    holds the token ids, never the file's text)."""
    seqs, labels = [], []
    try:
        with open_regular(path, "data file") as handle:  # a fifo or a device is refused, not read forever
            first = handle.readline().rstrip(b"\r\n")
            if first.split(b"\t") != [b"Source", b"Target"]:
                raise CorruptFileError(f"{path}: line 1: expected the header 'Source<TAB>Target', found "
                                       f"{first[:60].decode(errors='replace')!r}")
            for number, raw in enumerate(handle, start=2):
                line = raw.rstrip(b"\r\n")
                if not line:
                    continue
                ids, label = _row(path, number, line, protocol)
                seqs.append(ids)
                labels.append(label)
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc})") from None
    if not seqs:
        raise CorruptFileError(f"{path}: no examples")
    return RaggedTokens.from_lists(seqs, labels)


def _row(path: Path, number: int, line: bytes, protocol: str) -> tuple[np.ndarray, int]:
    fields = line.split(b"\t")
    if len(fields) != 2:
        raise CorruptFileError(f"{path}: line {number}: {len(fields)} column(s), expected 2 (Source, Target)")
    source, target = fields
    if target.strip() not in {str(i).encode() for i in range(10)}:
        raise CorruptFileError(f"{path}: line {number}: bad label {target[:20].decode(errors='replace')!r} "
                               f"(targets are 0..9)")
    try:
        ids = tokenize(source, protocol)
    except ValueError as exc:
        raise CorruptFileError(f"{path}: line {number}: {exc}") from None
    if len(ids) == 0:
        raise CorruptFileError(f"{path}: line {number}: empty expression")
    if len(ids) > MAX_LEN:
        raise CorruptFileError(f"{path}: line {number}: {len(ids)} tokens, more than {MAX_LEN}")
    return ids, int(target)


class ListOpsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: Literal["default", "paper-compat"] = Field(
        default="default", description="default: brackets kept, 2000 tokens, last real token read; "
                                       "paper-compat: the reference code's tokens, 512, last position, val as test")
    source: Literal["auto", "lra", "generated", "small"] = Field(
        default="auto", description="auto: LRA files when present, else the generated set; lra; generated; small: "
                                    "384 short expressions drawn in memory (the smoke profile's)")
    generator_seed: int = Field(default=0, ge=0, description="seed of the generated set (source generated/auto)")


class ListOps(TokenFileTask):
    Options = ListOpsOptions
    splits = tuple(SPLIT_FILES)
    spec = TaskSpec(
        name="listops", version="1",
        description="ListOps (LRA listops-1000): value of nested MIN/MAX/MED/SM expressions, 10 classes",
        citation="Nangia & Bowman. ListOps. 2018. Tay et al. Long Range Arena. 2020.",
        input=Tokens(vocab_size=len(VOCAB), pad_id=0), max_len=MAX_LEN,
        output=OutputSpec(n_classes=10, readout=Readout.LAST_NONPAD), bucket_by_length=True,
        paper=PaperHParams(lr=1e-3, batch_size=16, steps=10_000),
        # quick: a 2000-token cell is slow on a CPU, so validation and test read subsets (the first 100 / 500),
        # in evaluation batches of 32 sequences (128 of 2000 tokens would hold GiBs of activations at once)
        # smoke: the small in-memory set (up to 100 tokens), 10 steps of 2 expressions and 8 to evaluate
        profiles={"quick": HParamOverrides(steps=100, batch_size=4, eval_every=50, val_examples=100,
                                           test_examples=500, eval_batch_size=32),
                  "smoke": HParamOverrides(steps=10, batch_size=2, eval_every=5, val_examples=8, test_examples=8)},
        profile_options={"smoke": {"source": "small"}},
        chance=0.17, chance_note="always the most common answer (9 or 0: each about 17% of the generated set)",
    )

    def resolve_spec(self, options: ListOpsOptions) -> TaskSpec:  # type: ignore[override]
        if options.protocol == "paper-compat":
            return self.spec.model_copy(update={
                "input": Tokens(vocab_size=len(PAPER_VOCAB), pad_id=0), "max_len": PAPER_MAX_LEN,
                "output": OutputSpec(n_classes=10, readout=Readout.LAST), "test_splits": ["val"],
                "protocol": "paper-compat",
            })
        if options.source == "small":  # its expressions are shorter than SMALL_SHAPE's max_length tokens
            return self.spec.model_copy(update={"max_len": SMALL_SHAPE["max_length"]})
        return self.spec

    def data_files(self, options: ListOpsOptions) -> list[DataFile]:  # type: ignore[override]
        if options.source in ("generated", "small"):
            return []
        return [DataFile(f"{LRA_DIR}/{name}", LRA_URL, archive="lra_release.gz") for name in SPLIT_FILES.values()]

    def generated_dir(self, data_dir: Path, options: ListOpsOptions) -> Path:
        return Path(data_dir) / GENERATED_DIR / f"seed{options.generator_seed}"

    def _source(self, data_dir: Path, options: ListOpsOptions) -> str:
        if options.source != "auto":
            return options.source
        lra = check_files(data_dir, self.data_files(options))
        return "lra" if all(s.usable for s in lra) else "generated"

    def data_state(self, data_dir: Path, options: ListOpsOptions) -> tuple[str, str]:
        """For ``fpt-bench data status``: which source a run would use."""
        folder = self.generated_dir(data_dir, options)
        if options.source == "small":
            return "ready", f"small set (seed {options.generator_seed}), drawn in memory when a cell runs"
        if self._source(data_dir, options) == "lra":
            return "ready", "LRA files"
        if (folder / SPLIT_FILES["test"]).is_file():
            return "ready", f"generated set (seed {options.generator_seed}) in {folder}"
        return "ready", (f"LRA files absent: a run generates the set (seed {options.generator_seed}, a few "
                         f"minutes) into {folder}, or run `fpt-bench data generate listops`")

    def prepare(self, data_dir: Path, download: bool, options: ListOpsOptions) -> None:  # type: ignore[override]
        if options.source == "small":
            return
        if options.source == "lra" or (download and options.source == "auto"):
            prepare_files(self.spec.name, data_dir, self.data_files(options), download)
            return
        if self._source(data_dir, options) == "generated":
            folder = self.generated_dir(data_dir, options)
            if not (folder / SPLIT_FILES["test"]).is_file():
                print(f"listops: generating the ListOps set (seed {options.generator_seed}) into {folder} "
                      f"(once; a few minutes)", file=sys.stderr, flush=True)
                listops_gen.write_splits(folder, options.generator_seed)

    def generate_data(self, data_dir: Path, seed: int, out: Path | None = None,
                      sizes: dict[str, int] | None = None) -> dict[str, Path]:
        """``fpt-bench data generate listops``: write the three TSV files (default: where ``source=generated``
        with ``generator_seed=seed`` reads them)."""
        if sizes is not None and (set(sizes) != set(SPLIT_FILES) or min(sizes.values()) < 1):
            raise UserError(f"--sizes: give a positive count for each of {', '.join(SPLIT_FILES)}")
        folder = out or self.generated_dir(data_dir, ListOpsOptions(generator_seed=seed))
        return listops_gen.write_splits(folder, seed, sizes)

    def load(self, split: str, options: ListOpsOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        if split in SPLIT_FILES and self._source(data_dir, options) == "small":
            return _small_split(split, options)
        return super().load(split, options, data_dir)

    def split_file(self, split: str, options: ListOpsOptions, data_dir: Path  # type: ignore[override]
                   ) -> tuple[Path, dict[str, Any]]:
        if self._source(data_dir, options) == "lra":
            state = require_files("listops", data_dir, self.data_files(options))[list(SPLIT_FILES).index(split)]
            assert state.location is not None
            return state.location, {"source": "LRA listops-1000", "files": files_provenance([state])}
        path = self.generated_dir(data_dir, options) / SPLIT_FILES[split]
        if not path.is_file():
            self.prepare(data_dir, False, options)
        return path, {"source": "generated (LRA algorithm)", "generator_seed": options.generator_seed,
                      "file": str(path)}

    def read_tokens(self, path: Path, split: str, options: ListOpsOptions,  # type: ignore[override]
                    info: dict[str, Any]) -> RaggedTokens:
        return read_tsv(path, options.protocol)

    def token_key(self, options: ListOpsOptions) -> dict[str, Any]:  # type: ignore[override]
        return {"tokenizer": TOKENIZER_VERSION, "protocol": options.protocol}

    def to_split(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, info: dict[str, Any],  # type: ignore[override]
                 options: ListOpsOptions) -> SplitData:
        info["protocol"] = options.protocol
        if options.protocol == "paper-compat":  # the reference pads every sequence to 512 and reads the end
            from torch.nn import functional as F

            x = F.pad(x, (0, PAPER_MAX_LEN - x.shape[1]))
            return SplitData(x, y, info=info, decode=_long)
        return super().to_split(x, lengths, y, info, options)


def _long(x: torch.Tensor) -> torch.Tensor:
    return x.long()


SMALL_SIZES = {"train": 256, "val": 64, "test": 64}
SMALL_SHAPE = {"max_depth": 6, "max_args": 5, "min_length": 20, "max_length": 100}  # LRA's: 10, 10, 500, 2000


@functools.lru_cache(maxsize=4)
def _small_rows(seed: int) -> dict[str, tuple[tuple[str, int], ...]]:
    """The small set of ``seed``: LRA's algorithm with shallower, shorter trees (``SMALL_SHAPE``), split in the
    order of ``SMALL_SIZES``."""
    rows = iter(listops_gen.generate(sum(SMALL_SIZES.values()), seed, **SMALL_SHAPE))
    return {split: tuple((text, value) for text, value, _ in itertools.islice(rows, n))
            for split, n in SMALL_SIZES.items()}


def _small_split(split: str, options: ListOpsOptions) -> SplitData:
    rows = _small_rows(options.generator_seed)[split]
    tokens = RaggedTokens.from_lists([tokenize(text.encode(), options.protocol) for text, _ in rows],
                                     [value for _, value in rows])
    digest = hashlib.md5("".join(f"{t}\t{v}\n" for t, v in rows).encode(), usedforsecurity=False).hexdigest()
    info = {"source": "generated small set (LRA algorithm, 20-100 tokens, in memory)", "md5": digest,
            "generator_seed": options.generator_seed, "shape": SMALL_SHAPE, "protocol": options.protocol,
            "examples": len(tokens)}
    x, lengths, y = tokens.padded()
    if options.protocol == "paper-compat":
        from torch.nn import functional as F

        x = F.pad(x, (0, PAPER_MAX_LEN - x.shape[1]))
        return SplitData(x, y, info=info, decode=_long)
    return SplitData(x, y, lengths, info=info, decode=_long)


@hookimpl
def fpt_bench_register_tasks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(ListOps())
