"""The result store: one JSON file per cell at a deterministic path, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from fpt_bench.api.errors import CorruptFileError
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.safe_read import read_text
from fpt_bench.results.schema import CellResult
from fpt_bench.api.cell import CellConfig

MAX_RESULT_BYTES = 5_000_000  # a result file is a few kB (a long learning curve: a few hundred)


def _slug(text: str) -> str:
    """A path component made of ``text``: never empty, ``.`` or ``..`` (a task named ``..`` stays in its folder)."""
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return slug if slug.strip(".") else slug.replace(".", "-") or "-"


def result_path(output_dir: Path, cell: CellConfig) -> Path:
    """``<output_dir>/<task>/<backbone>__<policy>/<profile>-seed<seed>-<config hash>.json``."""
    folder = Path(output_dir) / _slug(cell.task) / f"{_slug(cell.backbone)}__{_slug(cell.policy)}"
    return folder / f"{_slug(cell.profile)}-seed{cell.seed}-{cell.config_hash()}.json"


def checkpoint_path(result: Path) -> Path:
    return result.with_suffix(".ckpt")


def selected_params_path(result: Path) -> Path:
    """The trainable parameters a finished cell reports (written with ``--keep-checkpoints``)."""
    return result.with_suffix(".params.pt")


def write_result(path: Path, result: CellResult) -> None:
    blob = (result.model_dump_json(indent=2) + "\n").encode()
    atomic_write(path, lambda handle: handle.write(blob))


def read_result(path: Path) -> CellResult:
    """Read and validate one result file; a malformed one is a CorruptFileError naming the file."""
    try:
        raw = read_text(Path(path), MAX_RESULT_BYTES, "result file")  # a regular file: a fifo would hang
        data = json.loads(raw)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{path}: not a readable result file ({str(exc).removeprefix(f'{path}: ')})") from None
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, bad UTF-8, an integer of over 4300 digits
        raise CorruptFileError(f"{path}: not a readable result file ({exc})") from None
    except RecursionError:
        raise CorruptFileError(f"{path}: not a readable result file (JSON nested too deeply)") from None
    try:
        return CellResult.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CorruptFileError(
            f"{path}: does not match the result schema ({exc.error_count()} problem(s); first: {loc}: {first['msg']})"
        ) from None


def should_run(path: Path, overwrite: str) -> bool:
    """``missing``: run unless a finished (ok/diverged) result exists; ``never``: run only if no file;
    ``always``: run."""
    if overwrite == "always" or not path.exists():
        return True
    if overwrite == "never":
        return False
    try:
        return read_result(path).status == "failed"
    except CorruptFileError:
        return True


def remove_leftovers(result: Path, keep_checkpoint: bool = True) -> list[Path]:
    """Remove what dead writers of this cell (SIGKILL, power loss) left: the temporary files of interrupted
    atomic writes and, unless ``keep_checkpoint``, the checkpoint of a cell whose result is finished (a writer
    killed between writing the result and removing its checkpoint). Call it only while holding the cell's lock
    (then no live writer owns a temporary file). Returns the removed paths."""
    result = Path(result)
    names = (result.name, checkpoint_path(result).name, selected_params_path(result).name)
    doomed = [p for name in names for p in result.parent.glob(f".{name}.*.tmp")]
    ckpt = checkpoint_path(result)
    if not keep_checkpoint and ckpt.is_file():  # a folder there is reported when the cell is claimed
        try:
            finished = read_result(result).status != "failed"
        except CorruptFileError:
            finished = False
        if finished:
            doomed.append(ckpt)
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def iter_results(root: Path) -> Iterator[tuple[Path, CellResult | CorruptFileError]]:
    for path in sorted(Path(root).rglob("*.json")):
        try:
            yield path, read_result(path)
        except CorruptFileError as exc:
            yield path, exc
