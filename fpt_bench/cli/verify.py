"""``fpt-bench verify RESULT...``: rerun each result's cell from its recorded config and say whether the numbers
are the same (``fpt_bench/cells/rerun.py``), writing a verification record next to each result
(``fpt_bench/leaderboard/verification.py``) that the published leaderboard shows.

Exit code 0 when every result matches, 1 when a rerun differs (the differing numbers are listed), 2 when a result
cannot be verified here (not a valid result, a plugin that is not installed, data that is missing...): then the
command's verdict is incomplete, whatever the others found.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError

SHOWN = 12  # differences listed per result (all of them are in the record)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="rerun result files' cells on the CPU and check their numbers",
                       description="Rerun each result's cell from its recorded config (on the CPU, with its thread "
                                   "count, in a temporary folder) and compare every metric and the learning curve: "
                                   "bit for bit for a result computed on a CPU, within a stated tolerance for one "
                                   "from another device. Writes R.verify next to each result R.json (the published "
                                   "leaderboard shows verified seeds).")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULT", help="result files or folders of them")
    p.add_argument("--data-dir", type=Path, help="where task data lives (default $FPT_BENCH_DATA or the cache)")
    p.add_argument("--no-record", action="store_true", help="do not write the verification records")


def _files(paths: list[Path]) -> list[Path]:
    from fpt_bench.leaderboard.collect import result_files

    files, refused = result_files(paths)
    for reason in refused:  # a folder's .json links out of it are not its results
        print(f"refused        {reason}", file=sys.stderr)
    if not files:
        raise UserError(f"no result files in {', '.join(map(str, paths))}")
    return files


def _verify_one(path: Path, host: Any, data_dir: Path, record: bool) -> str:
    """Verify one result; returns 'match', 'differs' or 'cannot' (after printing what was found)."""
    import torch

    from fpt_bench import __version__
    from fpt_bench.cells.rerun import ACCURACY_TOLERANCE, LOSS_TOLERANCE, check_rerunnable, compare, rerun
    from fpt_bench.leaderboard.validate import check_result_file
    from fpt_bench.leaderboard.verification import Rerun, VerificationRecord, result_digest, write_record

    try:
        result = check_result_file(path)
        notes = check_rerunnable(result, host)
    except UserError as exc:
        print(f"cannot verify  {path}: {str(exc).removeprefix(f'{path}: ')}")
        return "cannot"
    again, seconds, threads = rerun(result, host, data_dir)
    if again.status == "failed" and again.error_kind == "user" and result.status != "failed":
        print(f"cannot verify  {path}: the rerun could not run here: {again.error}")
        return "cannot"
    found = compare(result, again)
    how = "bit for bit" if found.exact else (f"within {ACCURACY_TOLERANCE} absolute on accuracies and "
                                             f"{LOSS_TOLERANCE:.0%} on losses (computed on "
                                             f"{result.provenance.device})")
    where = f"cpu, {threads} thread(s), {seconds:.1f} s"
    if found.differences:
        print(f"DIFFERS        {path}: {len(found.differences)} of {found.compared} numbers differ ({how}; {where}):")
        for line in found.differences[:SHOWN]:
            print(f"    {line}")
        if len(found.differences) > SHOWN:
            print(f"    ... and {len(found.differences) - SHOWN} more (in the verification record)")
    else:
        print(f"match          {path}: {found.compared} numbers {how} ({where})")
    for note in notes:
        print(f"    note: {note}")
    if record:
        entry = VerificationRecord(
            result=path.name, result_sha256=result_digest(result), config_hash=result.provenance.config_hash,
            outcome="differs" if found.differences else "match", compared=how, differences=found.differences,
            notes=notes, rerun=Rerun(device="cpu", threads=threads, torch=torch.__version__,
                                     harness_version=__version__, seconds=round(seconds, 3)),
            verified_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        try:
            write_record(path, entry)
        except OSError as exc:  # a read-only copy of results: the verdict stands without its record
            print(f"fpt-bench: warning: the verification record was not written: {exc}", file=sys.stderr)
    return "differs" if found.differences else "match"


def run(args: argparse.Namespace) -> int:
    from fpt_bench.datastore.files import resolve_data_dir
    from fpt_bench.host.manager import get_host

    files = _files(args.results)
    host = get_host()
    data_dir = resolve_data_dir(args.data_dir)
    outcomes = [_verify_one(path, host, data_dir, not args.no_record) for path in files]
    n = {k: outcomes.count(k) for k in ("match", "differs", "cannot")}
    print(f"verified {len(files)} result(s): {n['match']} match, {n['differs']} differ, {n['cannot']} could not be "
          "verified")
    return 2 if n["cannot"] else 1 if n["differs"] else 0
