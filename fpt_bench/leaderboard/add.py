"""``fpt-bench leaderboard --add FILE...``: result files made elsewhere join the published results only after
the schema and provenance checks (``validate.py``); each refusal says exactly why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fpt_bench.api.errors import CorruptFileError
from fpt_bench.leaderboard.collect import load_results
from fpt_bench.leaderboard.consistency import cell_key
from fpt_bench.leaderboard.validate import cell_config, check_result_file
from fpt_bench.leaderboard.verification import carry
from fpt_bench.results.store import read_result, result_path, write_result


@dataclass
class AddReport:
    added: list[Path] = field(default_factory=list)  # where each accepted file now lies
    unchanged: list[Path] = field(default_factory=list)  # already published, identical
    refused: list[str] = field(default_factory=list)  # "<file>: <reason>"


def add_results(files: list[Path], results_dir: Path, records_from: frozenset[Path] = frozenset()) -> AddReport:
    """Check each file and copy the accepted ones to ``results_dir`` under their canonical result path. Only the
    files in ``records_from`` (results of the publisher's own folders) bring their verification records: a record
    next to a file from elsewhere proves nothing (anyone can write one), so its result arrives unverified."""
    report = AddReport()
    published = {cell_key(x.result): x.path for x in load_results([results_dir])[0]} if results_dir.is_dir() else {}
    for f in map(Path, files):
        try:
            result = check_result_file(f)
        except CorruptFileError as exc:
            report.refused.append(str(exc))
            continue
        dest = result_path(results_dir, cell_config(result))
        twin = published.get(cell_key(result))
        if twin is not None and twin != dest:
            report.refused.append(f"{f}: refused: the same cell and seed as the published {twin} once options are "
                                  f"normalised against their defaults (one result per seed counts)")
            continue
        if dest.exists():
            try:
                existing = read_result(dest)
            except CorruptFileError:
                existing = None
            if existing == result:
                if f in records_from:
                    carry(f, dest, result)  # a verification record made since it was published
                report.unchanged.append(dest)
                continue
            if existing is not None:
                report.refused.append(
                    f"{f}: refused: a different result of the same cell (config hash "
                    f"{result.provenance.config_hash}) is already published at {dest}; remove that file first "
                    f"to replace it")
                continue
        write_result(dest, result)  # the validated model, re-serialised: nothing unchecked is copied
        if f in records_from:
            carry(f, dest, result)  # its verification record, when one applies to it exactly
        published[cell_key(result)] = dest
        report.added.append(dest)
    return report
