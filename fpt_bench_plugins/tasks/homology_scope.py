"""``remote_homology_scope``: fold classification built from an ASTRAL SCOPe FASTA file, parsed with Biopython.

This is its own benchmark, not TAPE's: the domains, the fold set and the splits differ, so its numbers are never
compared with ``remote_homology``'s. Headers look like ``>d1dlwa_ a.1.1.1 (A:) ...``: the second field is the
sccs ``class.fold.superfamily.family``; the label is the fold (``a.1``). Sequences are upper-cased and encoded
with TAPE's IUPAC vocabulary (``x`` -> ``X``).

Splits, seeded by ``split_seed`` and holding out whole groups as TAPE did:
- ``test_superfamily_holdout``: whole superfamilies never seen in training (their fold is, through another
  superfamily -- the largest superfamily of a fold is never held out);
- ``test_family_holdout``: whole families never seen in training (their superfamily is, likewise);
- ``test_in_family``: random domains of families seen in training;
- ``valid``: random domains (model selection); ``train``: the rest.
Labels number the folds present in ``train`` in sorted order; evaluation domains of other folds are dropped
(and counted). Default: SCOPe classes a-g.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import (
    CorruptFileError,
    DataFile,
    HParamOverrides,
    OutputSpec,
    PaperHParams,
    Readout,
    TaskSpec,
    Tokens,
    UserError,
    hookimpl,
)
from fpt_bench.api.files import RaggedTokens, TokenFileTask, files_provenance, prepare_files, require_files
from fpt_bench_plugins.tasks.homology import IUPAC, PAD, encode_protein

SPLIT_VERSION = 1
FASTA = "scope/astral-scopedom-seqres-gd-sel-gs-bib-40-2.08.fa"
FASTA_URL = "https://scop.berkeley.edu/downloads/scopeseq-2.08/astral-scopedom-seqres-gd-sel-gs-bib-40-2.08.fa"
SPLITS = ("train", "valid", "test_superfamily_holdout", "test_family_holdout", "test_in_family")
SCCS = re.compile(r"^([a-l])\.(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Domain:
    id: str
    sccs: str
    sequence: str

    @property
    def fold(self) -> str:
        return self.sccs.rsplit(".", 2)[0]

    @property
    def superfamily(self) -> str:
        return self.sccs.rsplit(".", 1)[0]


def read_astral(path: Path) -> list[Domain]:
    """Domains of an ASTRAL FASTA file; one clear error for a malformed header or an unknown residue."""
    from Bio import SeqIO

    domains = []
    try:
        for number, record in enumerate(SeqIO.parse(str(path), "fasta"), start=1):
            fields = record.description.split()
            if len(fields) < 2 or not SCCS.match(fields[1]):
                raise CorruptFileError(
                    f"{path}: record {number}: malformed ASTRAL header {('>' + record.description)[:80]!r}: "
                    f"expected '>d1dlwa_ a.1.1.1 (A:) ...' (domain id, then the sccs class.fold.superfamily.family)")
            sequence = str(record.seq).upper()
            try:
                encode_protein(sequence)
            except ValueError as exc:
                raise CorruptFileError(f"{path}: record {number} ({record.id}): {exc}") from None
            if not sequence:
                raise CorruptFileError(f"{path}: record {number} ({record.id}): empty sequence")
            domains.append(Domain(record.id, fields[1], sequence))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path}: not a FASTA file ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc})") from None
    if not domains:
        raise CorruptFileError(f"{path}: no FASTA records")
    return domains


def split_domains(domains: list[Domain], seed: int, superfamily_holdout: float = 0.1,
                  family_holdout: float = 0.1, valid: float = 0.05, in_family: float = 0.05
                  ) -> tuple[dict[str, list[Domain]], dict[str, int], dict[str, int]]:
    """The five splits, the fold -> label map (folds in train, sorted) and counts of dropped domains."""
    rng = random.Random(seed)
    sf_of_fold: dict[str, Counter[str]] = defaultdict(Counter)
    fam_of_sf: dict[str, Counter[str]] = defaultdict(Counter)
    for d in domains:
        sf_of_fold[d.fold][d.superfamily] += 1
        fam_of_sf[d.superfamily][d.sccs] += 1

    def held(groups: dict[str, Counter[str]], rate: float, skip: set[str]) -> set[str]:
        out = set()
        for parent in sorted(groups):
            if parent in skip or len(groups[parent]) < 2:
                continue
            largest = max(sorted(groups[parent]), key=lambda g: groups[parent][g])
            out |= {g for g in sorted(groups[parent]) if g != largest and rng.random() < rate}
        return out

    held_sf = held(sf_of_fold, superfamily_holdout, set())
    held_fam = held(fam_of_sf, family_holdout, held_sf)
    splits: dict[str, list[Domain]] = {s: [] for s in SPLITS}
    for d in domains:
        if d.superfamily in held_sf:
            splits["test_superfamily_holdout"].append(d)
        elif d.sccs in held_fam:
            splits["test_family_holdout"].append(d)
        else:
            r = rng.random()
            splits["valid" if r < valid else "test_in_family" if r < valid + in_family else "train"].append(d)
    folds = sorted({d.fold for d in splits["train"]})
    families = {d.sccs for d in splits["train"]}
    dropped = {}
    for name in SPLITS[1:]:
        keep = [d for d in splits[name] if d.fold in folds and (name != "test_in_family" or d.sccs in families)]
        dropped[name] = len(splits[name]) - len(keep)
        splits[name] = keep
    return splits, {f: i for i, f in enumerate(folds)}, dropped


class ScopeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split_seed: int = Field(default=0, ge=0, description="seed of the held-out groups and random splits")
    classes: str = Field(default="abcdefg", pattern=r"^[a-l]+$", description="SCOPe classes kept")
    max_len: int = Field(default=1024, ge=3, description="tokens kept per sequence (incl. <cls> and <sep>)")
    n_classes: int = Field(default=1300, gt=1, description="output size; at least the number of folds")
    superfamily_holdout: float = Field(default=0.1, ge=0, lt=1, description="share of eligible superfamilies held out")
    family_holdout: float = Field(default=0.1, ge=0, lt=1, description="share of eligible families held out")
    valid_fraction: float = Field(default=0.05, ge=0, lt=0.5, description="remaining domains drawn for valid")
    in_family_fraction: float = Field(default=0.05, ge=0, lt=0.5, description="remaining domains for test_in_family")


class RemoteHomologySCOPe(TokenFileTask):
    Options = ScopeOptions
    splits = SPLITS
    spec = TaskSpec(
        name="remote_homology_scope",
        description="Fold classification from ASTRAL SCOPe 2.08 (40% identity), superfamily/family holdouts",
        citation="Fox, Brenner, Chandonia. SCOPe. 2014; Chandonia et al. 2022 (SCOPe 2.08).",
        input=Tokens(vocab_size=len(IUPAC), pad_id=PAD), max_len=1024,
        output=OutputSpec(n_classes=1300, readout=Readout.LAST_NONPAD), bucket_by_length=True,
        val_split="valid", test_splits=["test_superfamily_holdout", "test_family_holdout", "test_in_family"],
        paper=PaperHParams(lr=1e-4, batch_size=16, steps=100_000),
        # smoke: sequences cut at 128 tokens (of up to 1,024), 2 a step, 16 per evaluation split
        profiles={"quick": HParamOverrides(steps=100, batch_size=4, eval_every=50, val_examples=200),
                  "smoke": HParamOverrides(batch_size=2, val_examples=16, test_examples=16)},
        profile_options={"smoke": {"max_len": 128}},
    )

    def resolve_spec(self, options: ScopeOptions) -> TaskSpec:  # type: ignore[override]
        return self.spec.model_copy(update={"max_len": options.max_len,
                                            "output": OutputSpec(n_classes=options.n_classes,
                                                                 readout=Readout.LAST_NONPAD)})

    def data_files(self, options: BaseModel) -> list[DataFile]:
        return [DataFile(FASTA, FASTA_URL)]

    def prepare(self, data_dir: Path, download: bool, options: BaseModel) -> None:
        prepare_files(self.spec.name, data_dir, self.data_files(options), download)

    def split_file(self, split: str, options: ScopeOptions, data_dir: Path  # type: ignore[override]
                   ) -> tuple[Path, dict[str, Any]]:
        states = require_files(self.spec.name, data_dir, self.data_files(options))
        assert states[0].location is not None
        return states[0].location, {"source": "ASTRAL SCOPe FASTA", "files": files_provenance(states),
                                    "split_seed": options.split_seed}

    def read_tokens(self, path: Path, split: str, options: ScopeOptions,  # type: ignore[override]
                    info: dict[str, Any]) -> RaggedTokens:
        domains = [d for d in read_astral(path) if d.sccs[0] in options.classes]
        splits, labels, dropped = split_domains(domains, options.split_seed, options.superfamily_holdout,
                                                options.family_holdout, options.valid_fraction,
                                                options.in_family_fraction)
        if len(labels) > options.n_classes:
            raise UserError(f"{path} has {len(labels)} folds in train, more than n_classes={options.n_classes}; "
                            f"pass --task-args n_classes={len(labels)}")
        info.update(folds=len(labels), dropped=dropped.get(split, 0))
        seqs = [encode_protein(d.sequence)[: options.max_len] for d in splits[split]]
        if not seqs:
            raise UserError(f"{path}: split {split!r} is empty (too few domains for this split)")
        return RaggedTokens.from_lists(seqs, [labels[d.fold] for d in splits[split]])

    def token_key(self, options: ScopeOptions) -> dict[str, Any]:  # type: ignore[override]
        return {"split_version": SPLIT_VERSION, **options.model_dump()}


@hookimpl
def fpt_bench_register_tasks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(RemoteHomologySCOPe())
