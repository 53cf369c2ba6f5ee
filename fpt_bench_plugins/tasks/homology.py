"""Remote homology detection (TAPE, Rao et al. 2019): the fold (1195 classes) of a protein from its sequence.

Files: TAPE's ``remote_homology/remote_homology_<split>.lmdb`` directories (option ``format=lmdb``, default) or
the raw JSON lists ``remote_homology_<split>.json`` (``format=json``). LMDB values are pickled dicts from a
download, so they go through a restricted unpickler that admits only plain data. Splits: ``train`` (12,312),
``valid`` (736), ``test_fold_holdout`` (718), ``test_superfamily_holdout`` (1,254), ``test_family_holdout``
(1,272). Tokens: TAPE's IUPAC vocabulary, ``<cls>`` + residues + ``<sep>`` (``SLFEQX`` -> 2 22 15 10 9 20 27 3);
a residue outside it is an error, as in TAPE.

Protocols: ``default`` reports the three holdout test splits and their mean, selects on ``valid`` and reads the
last real token; sequences longer than ``max_len`` (1024) are cut and counted. ``paper-compat`` evaluates on
``valid`` (as the reference code did), cuts at 1024 and reads the last position of the padded batch.
"""

from __future__ import annotations

import functools
import json
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import (
    CorruptFileError,
    DataFile,
    DataMissingError,
    HParamOverrides,
    OutputSpec,
    PaperHParams,
    Readout,
    SplitData,
    TaskSpec,
    Tokens,
    hookimpl,
)
from fpt_bench.api.files import (
    RaggedTokens,
    TokenFileTask,
    files_provenance,
    loads_plain_pickle,
    open_regular,
    prepare_files,
    require_files,
)

if TYPE_CHECKING:  # numpy is imported when sequences are read: listing the plugins loads without it
    import numpy as np

TOKENIZER_VERSION = 1
URL = "http://s3.amazonaws.com/songlabdata/proteindata/data_pytorch/remote_homology.tar.gz"
URL_JSON = "http://s3.amazonaws.com/songlabdata/proteindata/data_raw/remote_homology.tar.gz"
ARCHIVE_MD5 = "1d687bdeb9e3866f77504d6079eed00a"
SPLITS = ("train", "valid", "test_fold_holdout", "test_superfamily_holdout", "test_family_holdout")
TEST_SPLITS = ["test_fold_holdout", "test_superfamily_holdout", "test_family_holdout"]
N_FOLDS = 1195

IUPAC = ["<pad>", "<mask>", "<cls>", "<sep>", "<unk>", *"ABCDEFGHIKLMNOPQRSTUVWXYZ"]
PAD, CLS, SEP = 0, 2, 3


@functools.cache
def _residue_ids() -> np.ndarray:
    """byte -> residue id (255: not a residue); made on first use (numpy is not imported to list the task)."""
    import numpy as np

    table = np.full(256, 255, dtype=np.uint8)
    for i, letter in enumerate(IUPAC[5:], start=5):
        table[ord(letter)] = i
    return table


def encode_protein(sequence: str) -> np.ndarray:
    """``<cls>`` + residue ids + ``<sep>`` (upper-cased); ValueError naming an unknown residue."""
    import numpy as np

    if not sequence.isascii():  # before upper(): 'ß'.upper() is 'SS', which would pass for two residues
        at = next(i for i, c in enumerate(sequence) if not c.isascii())
        raise ValueError(f"unknown residue {sequence[at]!r} at position {at + 1} (IUPAC letters only)")
    raw = sequence.upper().encode("ascii")
    ids = _residue_ids()[np.frombuffer(raw, dtype=np.uint8)]
    if (ids == 255).any():
        at = int(np.argmax(ids == 255))
        raise ValueError(f"unknown residue {sequence[at]!r} at position {at + 1} (IUPAC letters only)")
    return np.concatenate([[CLS], ids, [SEP]]).astype(np.uint8)


def tokenize_records(records: list[tuple[str, Any, Any]], where: str, max_len: int, n_classes: int,
                     ) -> tuple[RaggedTokens, int]:
    """(id, sequence, label) records -> tokens cut at ``max_len``; returns the tokens and how many were cut."""
    seqs, labels, cut = [], [], 0
    for name, sequence, label in records:
        if not isinstance(sequence, str) or not sequence:
            raise CorruptFileError(f"{where}: record {name}: 'primary' must be a non-empty amino-acid string")
        try:
            ids = encode_protein(sequence)
        except ValueError as exc:
            raise CorruptFileError(f"{where}: record {name}: {exc}") from None
        if isinstance(label, bool) or not isinstance(label, int | Integral) or not 0 <= int(label) < n_classes:
            raise CorruptFileError(f"{where}: record {name}: bad label {label!r} (fold labels are 0..{n_classes - 1})")
        if len(ids) > max_len:
            ids, cut = ids[:max_len], cut + 1
        seqs.append(ids)
        labels.append(int(label))
    if not seqs:
        raise CorruptFileError(f"{where}: no records")
    return RaggedTokens.from_lists(seqs, labels), cut


def read_lmdb(folder: Path) -> list[dict[str, Any]]:
    """A TAPE LMDB directory: ``num_examples`` -> int, ``str(i)`` -> dict, all pickled."""
    import lmdb

    open_regular(folder / "data.mdb", "LMDB data file").close()  # a fifo there would block LMDB's open
    try:
        env = lmdb.open(str(folder), readonly=True, lock=False, readahead=False, subdir=True, max_readers=4)
    except lmdb.Error as exc:
        raise CorruptFileError(f"{folder}: not a readable LMDB directory ({exc})") from None
    try:
        # LMDB maps the file and trusts it: reading a page past the end of a truncated copy is a bus error that
        # kills the process. The meta page says how many pages there are; the file must hold them all.
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        size = (folder / "data.mdb").stat().st_size
        if size < needed:
            raise CorruptFileError(f"{folder / 'data.mdb'}: truncated: {size} bytes, its LMDB header says "
                                   f"{needed} (an interrupted copy? fetch or import it again)")
        with env.begin(write=False) as txn:
            raw = txn.get(b"num_examples")
            if raw is None:
                raise CorruptFileError(f"{folder}: no 'num_examples' key (not a TAPE LMDB directory)")
            count = loads_plain_pickle(raw, f"{folder} [num_examples]")
            if not isinstance(count, int) or count < 0:
                raise CorruptFileError(f"{folder}: 'num_examples' is {count!r}, not a count")
            records = []
            for i in range(count):
                value = txn.get(str(i).encode())
                if value is None:
                    raise CorruptFileError(f"{folder}: record {i} is missing (num_examples says {count})")
                records.append(loads_plain_pickle(value, f"{folder} [record {i}]"))
    except (lmdb.Error, OSError) as exc:
        raise CorruptFileError(f"{folder}: damaged LMDB file ({exc})") from None
    finally:
        env.close()
    return records


def read_json(path: Path) -> list[dict[str, Any]]:
    try:
        with open_regular(path, "TAPE JSON file") as handle:  # a fifo or a device is refused, not read forever
            records = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CorruptFileError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(records, list):
        raise CorruptFileError(f"{path}: expected a JSON list of records, found {type(records).__name__}")
    return records


def tape_records(records: list[Any], where: str) -> list[tuple[str, Any, Any]]:
    out = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise CorruptFileError(f"{where}: record {i} is a {type(record).__name__}, expected a dict")
        for key in ("primary", "fold_label"):
            if key not in record:
                raise CorruptFileError(f"{where}: record {i} has no {key!r} field")
        out.append((f"{i} ({record.get('id', '?')})", record["primary"], record["fold_label"]))
    return out


class HomologyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: Literal["default", "paper-compat"] = Field(
        default="default", description="default: 3 holdout test splits + mean, last real token; "
                                       "paper-compat: evaluate on valid, cut at 1024, last position")
    format: Literal["lmdb", "json"] = Field(default="lmdb", description="TAPE's LMDB directories or JSON lists")
    max_len: int = Field(default=1024, ge=3, description="tokens kept per sequence (incl. <cls> and <sep>)")


class RemoteHomology(TokenFileTask):
    Options = HomologyOptions
    splits = SPLITS
    spec = TaskSpec(
        name="remote_homology",
        description="TAPE remote homology: SCOP fold (1195 classes) of a protein sequence",
        citation="Rao et al. Evaluating Protein Transfer Learning with TAPE. 2019.",
        input=Tokens(vocab_size=len(IUPAC), pad_id=PAD), max_len=1024,
        output=OutputSpec(n_classes=N_FOLDS, readout=Readout.LAST_NONPAD), bucket_by_length=True,
        val_split="valid", test_splits=TEST_SPLITS,
        paper=PaperHParams(lr=1e-4, batch_size=16, steps=100_000),
        # smoke: sequences cut at 128 tokens (of up to 1,024), 2 a step, 16 per evaluation split
        profiles={"quick": HParamOverrides(steps=100, batch_size=4, eval_every=50, val_examples=200),
                  "smoke": HParamOverrides(batch_size=2, val_examples=16, test_examples=16)},
        profile_options={"smoke": {"max_len": 128}},
    )

    def resolve_spec(self, options: HomologyOptions) -> TaskSpec:  # type: ignore[override]
        max_len = 1024 if options.protocol == "paper-compat" else options.max_len
        update: dict[str, Any] = {"max_len": max_len}
        if options.protocol == "paper-compat":
            update.update(output=OutputSpec(n_classes=N_FOLDS, readout=Readout.LAST), test_splits=["valid"],
                          protocol="paper-compat")
        return self.spec.model_copy(update=update)

    def _path(self, split: str, options: HomologyOptions) -> str:
        if options.format == "json":
            return f"remote_homology/remote_homology_{split}.json"
        return f"remote_homology/remote_homology_{split}.lmdb/data.mdb"

    def data_files(self, options: HomologyOptions) -> list[DataFile]:  # type: ignore[override]
        url = URL_JSON if options.format == "json" else URL
        md5 = "" if options.format == "json" else ARCHIVE_MD5
        return [DataFile(self._path(s, options), url, archive=f"remote_homology-{options.format}.tar.gz",
                         archive_md5=md5) for s in SPLITS]

    def prepare(self, data_dir: Path, download: bool, options: HomologyOptions) -> None:  # type: ignore[override]
        try:
            prepare_files(self.spec.name, data_dir, self.data_files(options), download)
        except DataMissingError as exc:
            other = "json" if options.format == "lmdb" else "lmdb"
            if (Path(data_dir) / self._path("train", options.model_copy(update={"format": other}))).exists():
                raise DataMissingError(f"{exc}\n  (the {other.upper()} files are present: pass "
                                       f"--task-args format={other})") from None
            raise

    def split_file(self, split: str, options: HomologyOptions, data_dir: Path  # type: ignore[override]
                   ) -> tuple[Path, dict[str, Any]]:
        state = require_files(self.spec.name, data_dir, self.data_files(options))[SPLITS.index(split)]
        assert state.location is not None
        return state.location, {"source": f"TAPE remote homology ({options.format})",
                                "files": files_provenance([state])}

    def read_tokens(self, path: Path, split: str, options: HomologyOptions,  # type: ignore[override]
                    info: dict[str, Any]) -> RaggedTokens:
        where = str(path.parent if options.format == "lmdb" else path)
        raw = read_lmdb(path.parent) if options.format == "lmdb" else read_json(path)
        return tokenize_records(tape_records(raw, where), where, self.resolve_spec(options).max_len, N_FOLDS)[0]

    def token_key(self, options: HomologyOptions) -> dict[str, Any]:  # type: ignore[override]
        return {"tokenizer": TOKENIZER_VERSION, "max_len": self.resolve_spec(options).max_len,
                "format": options.format}

    def to_split(self, x: Any, lengths: Any, y: Any, info: dict[str, Any],  # type: ignore[override]
                 options: HomologyOptions) -> SplitData:
        max_len = self.resolve_spec(options).max_len
        info.update(max_len=max_len, at_max_len=int((lengths >= max_len).sum()))
        return super().to_split(x, lengths, y, info, options)


@hookimpl
def fpt_bench_register_tasks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(RemoteHomology())
