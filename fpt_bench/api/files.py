"""File-backed tasks: the files a task reads, where they go, how they are checked, and — for tasks whose examples
are variable-length token sequences (ListOps, TAPE, SCOPe) — one base class that does the rest.

A task lists its files as :class:`DataFile` (path in the data directory, url, md5). ``require_files`` checks them
(checksums cached in the data directory's manifest) and raises one error saying what is missing and how to get it;
``prepare_files`` also downloads when asked (``fpt-bench data fetch``); ``files_provenance`` is what a result
records about them.

Files a task writes (a generated data set) go through ``atomic_write`` / ``atomic_directory``: a reader never sees
half a file. Every file a task reads is untrusted: ``open_regular``, ``read_bytes`` and ``read_text`` open regular
files only, with a size bound (a fifo or ``/dev/zero`` is one clear error); ``open_data``, ``read_upto``,
``check_promise`` and ``at_end`` read compressed files no further than their header promises (no decompression
bomb); ``load_plain_pickle`` admits plain data only.

:class:`TokenFileTask` reads a split's file once, tokenises it, caches the tokens as Arrow files in the data
directory (keyed by the file's checksum and whatever else the tokens depend on), and hands the harness the split
padded to its longest sequence with the real lengths, so batches pad only to their own longest sequence.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from fpt_bench.api.errors import UserError
from fpt_bench.api.task import DataFile, SplitData, Task
from fpt_bench.datastore.bounded import DECOMPRESS_ERRORS, at_end, check_promise, open_data, read_upto
from fpt_bench.datastore.cache import RaggedTokens, cached_tokens
from fpt_bench.datastore.files import FileState, Manifest, check_files, require_files
from fpt_bench.datastore.files import provenance as files_provenance
from fpt_bench.datastore.importer import prepare_files
from fpt_bench.infra.atomic import atomic_directory, atomic_write
from fpt_bench.infra.safe_read import open_regular, read_bytes, read_text

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    import torch

__all__ = ["DECOMPRESS_ERRORS", "DataFile", "FileState", "RaggedTokens", "TokenFileTask", "at_end",
           "atomic_directory", "atomic_write", "cached_tokens", "check_files", "check_promise", "file_md5",
           "files_provenance", "load_plain_pickle", "loads_plain_pickle", "open_data", "open_regular",
           "prepare_files", "read_bytes", "read_text", "read_upto", "require_files"]


def load_plain_pickle(handle: Any, where: str, encoding: str = "ASCII") -> Any:
    """``fpt_bench.datastore.safepickle.load``: plain data only (numpy is imported when a pickle is read)."""
    from fpt_bench.datastore.safepickle import load

    return load(handle, where, encoding)


def loads_plain_pickle(data: bytes, where: str, encoding: str = "ASCII") -> Any:
    """``fpt_bench.datastore.safepickle.loads``: plain data only."""
    from fpt_bench.datastore.safepickle import loads

    return loads(data, where, encoding)


def file_md5(data_dir: Path, path: Path) -> str:
    """The md5 of a file, cached in the data directory's manifest while its size and time stay the same."""
    manifest = Manifest(data_dir)
    rel = path.relative_to(data_dir).as_posix() if path.is_relative_to(data_dir) else str(path)
    md5 = manifest.checksum(rel, path)
    manifest.save()
    return md5


def _long(x: torch.Tensor) -> torch.Tensor:
    return x.long()


class TokenFileTask(Task):
    """A task whose splits are files of variable-length token sequences with one label each.

    Subclasses set ``spec`` and ``splits`` and implement ``split_file`` (which file holds a split, after checking
    it, and what the result records about it) and ``read_tokens`` (parse and tokenise it); ``token_key`` names what
    else the tokens depend on (a protocol, a maximum length), and ``to_split`` may change the padded tensors (the
    default keeps them). ``load`` does the rest: the split name, the checksum, the token cache, the padding."""

    splits: ClassVar[tuple[str, ...]]

    def split_file(self, split: str, options: BaseModel, data_dir: Path) -> tuple[Path, dict[str, Any]]:
        raise NotImplementedError

    def read_tokens(self, path: Path, split: str, options: BaseModel, info: dict[str, Any]) -> RaggedTokens:
        """Parse and tokenise ``path`` (called only when the cache has no entry); facts worth recording may go into
        ``info``."""
        raise NotImplementedError

    def token_key(self, options: BaseModel) -> dict[str, Any]:
        """What the tokens depend on besides the file's checksum (tokenizer version, options)."""
        return {}

    def to_split(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, info: dict[str, Any],
                 options: BaseModel) -> SplitData:
        return SplitData(x, y, lengths, info=info, decode=_long)

    def load(self, split: str, options: BaseModel, data_dir: Path) -> SplitData:
        if split not in self.splits:
            raise UserError(f"task {self.spec.name!r} has splits {', '.join(self.splits)}, not {split!r}")
        path, info = self.split_file(split, options, data_dir)
        md5 = file_md5(Path(data_dir), path)
        tokens, cache = cached_tokens(data_dir, self.spec.name, split, {"md5": md5, **self.token_key(options)},
                                      lambda: self.read_tokens(path, split, options, info))
        x, lengths, y = tokens.padded(self.resolve_spec(options).input.pad_id)  # type: ignore[union-attr]
        info.update(md5=md5, examples=len(tokens), **cache)
        return self.to_split(x, lengths, y, info, options)
