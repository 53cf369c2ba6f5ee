"""Verification records: what ``fpt-bench verify`` found when it reran a result's cell, kept next to the result.

``R.json`` gets ``R.verify`` (JSON, not ``*.json``, so the leaderboard never reads it as a result): the outcome
(``match`` or ``differs``), how the metrics were compared (bit for bit, or within the tolerance stated), the
differences, where and with what the rerun ran, and the SHA-256 of the result it verified, in its canonical form
(the validated result serialised again, as ``leaderboard --add`` writes it). A record counts only for that exact
result: edit one number of the result and its record no longer applies. Publishing the publisher's own result
folders (``leaderboard RESULTS --publish``) carries a record that applies along with its result; ``--add FILE``
never does (a record from elsewhere proves nothing: anyone can write one; run ``fpt-bench verify`` on the published
copy). The published tables show per cell how many seeds a rerun verified bit for bit; a match within the tolerance
for another device is not counted (the result's own ``provenance.device`` chose that tolerance).

A record says what one run of ``fpt-bench verify`` found, on the machine that ran it; like the result itself, it
is trusted as far as whoever published it (rerun it with ``fpt-bench verify`` to check).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fpt_bench.api.errors import CorruptFileError
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.safe_read import read_text
from fpt_bench.results.schema import CellResult

FORMAT = "fpt-bench-verification"
SUFFIX = ".verify"
MAX_BYTES = 1 << 20


class Rerun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str = Field(description="where the cell was rerun")
    threads: int = Field(description="CPU threads of the rerun")
    torch: str
    harness_version: str
    seconds: float


class VerificationRecord(BaseModel):
    """What ``R.verify`` holds."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["fpt-bench-verification"] = FORMAT
    format_version: Literal[1] = 1
    result: str = Field(description="the result's file name when it was verified")
    result_sha256: str = Field(description="SHA-256 of the result in canonical form (result_digest)")
    config_hash: str
    outcome: Literal["match", "differs"]
    compared: str = Field(description="'bit for bit', or the tolerance a result from another device was held to")
    differences: list[str] = Field(default=[], description="the metrics that differ: recorded vs rerun")
    notes: list[str] = Field(default=[], description="e.g. plugin versions that differ from the recorded ones")
    rerun: Rerun
    verified_at: str = Field(description="UTC time of the verification (ISO 8601)")


def result_digest(result: CellResult) -> str:
    """SHA-256 of ``result`` as written by ``write_result`` (the same for a result copied by ``--add``)."""
    return hashlib.sha256((result.model_dump_json(indent=2) + "\n").encode()).hexdigest()


def record_path(result_file: Path) -> Path:
    return Path(result_file).with_suffix(SUFFIX)


def write_record(result_file: Path, record: VerificationRecord) -> Path:
    path = record_path(result_file)
    blob = (record.model_dump_json(indent=2) + "\n").encode()
    atomic_write(path, lambda handle: handle.write(blob))
    return path


def read_record(result_file: Path, result: CellResult) -> VerificationRecord | None:
    """The record next to ``result_file`` when there is one, it is valid and it was made for ``result`` exactly;
    else None (a record of another version of the result, or not a record, verifies nothing)."""
    path = record_path(result_file)
    if not path.is_file():
        return None
    try:
        record = VerificationRecord.model_validate(json.loads(read_text(path, MAX_BYTES, "verification record")))
    except (CorruptFileError, OSError, ValueError, RecursionError, ValidationError):
        return None
    if record.result_sha256 != result_digest(result) or record.config_hash != result.provenance.config_hash:
        return None
    return record


def counts(runs: list[Any]) -> tuple[int, int]:
    """(seeds a rerun verified, seeds whose rerun differed) among ``runs`` (``Loaded``: path and result)."""
    verified = differs = 0
    for run in runs:
        record = read_record(run.path, run.result)
        if record is not None:  # a match within a tolerance is not shown as verified: the result chose the tolerance
            verified += record.outcome == "match" and record.compared == "bit for bit"
            differs += record.outcome == "differs"
    return verified, differs


def carry(source: Path, dest: Path, result: CellResult) -> bool:
    """Copy ``source``'s record next to ``dest`` when it applies to ``result`` (``leaderboard --add``)."""
    record = read_record(source, result)
    if record is None or read_record(dest, result) == record:
        return False
    write_record(dest, record.model_copy(update={"result": dest.name}))
    return True
