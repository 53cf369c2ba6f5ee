"""Resources: a disk that fills up (ENOSPC injected into the harness's atomic writes) while a checkpoint, a
result, a download or an extraction is written -- the previous file stays intact, nothing partial is left, the
run says so in one message and a rerun resumes; a download corrupted in transit (served from a local
http.server whose first response is wrong) is detected by its checksum, discarded and fetched again."""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import os
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import result_files, run_cli
from reliability_support import tally

from fpt_bench import CorruptFileError, DataFile, UserError
from fpt_bench.datastore.archive import safe_extract
from fpt_bench.datastore.download import download
from fpt_bench.datastore.importer import fetch_files
from fpt_bench.results.store import read_result

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
RUN = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--device", "cpu", "--no-progress",
       "--steps", "6", "--eval-every", "3", "--checkpoint-every", "2"]


class FullDisk:
    """Makes the disk 'fill up' for temporary files whose name passes ``which``: every write to them after
    ``room`` bytes raises ENOSPC, as a real full file system would (mkstemp and os.fdopen are wrapped)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, which: Callable[[str], bool], room: int = 0,
                 spare: int = 0) -> None:
        self.which, self.room, self.spare, self.hits = which, room, spare, 0
        self._fds: set[int] = set()
        real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen

        def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
            fd, name = real_mkstemp(*args, **kwargs)
            if self.which(Path(name).name):
                if self.spare > 0:
                    self.spare -= 1  # this many matching files still fit
                else:
                    self._fds.add(fd)
            return fd, name

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            handle = real_fdopen(fd, *args, **kwargs)
            if fd not in self._fds:
                return handle
            self._fds.discard(fd)  # the number is reused once this file is closed
            return _Filling(handle, self)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "fdopen", fdopen)


class _Filling:
    """A file on the full disk: writes past the room left raise ENOSPC; everything else is the real file's."""

    def __init__(self, handle: Any, disk: FullDisk) -> None:
        self.handle, self.disk, self.written = handle, disk, 0

    def write(self, data: Any) -> int:
        if self.written + len(data) > self.disk.room:
            self.disk.hits += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> _Filling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def temporaries(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".*") if p.is_file())


def test_full_disk_while_writing_a_result_keeps_the_previous_one_and_a_rerun_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run_cli(*RUN, "--output-dir", str(out))[0] == 0
    [path] = result_files(out)
    before = path.read_bytes()
    with monkeypatch.context() as patch:
        disk = FullDisk(patch, lambda name: ".json." in name, room=100)  # the result's temporary file
        code, _, err = run_cli(*RUN, "--output-dir", str(out), "--overwrite", "always", capsys=capsys)
    assert code == 2 and disk.hits == 1 and "Traceback" not in err
    assert "could not write the result of bit_xor" in err and "No space left on device" in err
    assert "the previous result there is intact" in err and "so a rerun resumes" in err
    assert path.read_bytes() == before  # byte for byte
    assert temporaries(out) == [] and path.with_suffix(".ckpt").exists()
    code, _, err = run_cli(*RUN, "--output-dir", str(out), "--overwrite", "always", capsys=capsys)
    rerun = read_result(path)
    assert code == 0 and rerun.timing.resumed_from_step == 4 and rerun.metrics == read_result_bytes(before).metrics
    assert "fpt-bench: bit_xor: resuming at step 4 of 6 from " in err  # the rerun says it resumed
    tally("resources", "full disk: results lost", 0)


def read_result_bytes(blob: bytes) -> Any:
    from fpt_bench.results.schema import CellResult

    return CellResult.model_validate_json(blob)


def test_full_disk_while_writing_checkpoints_keeps_the_last_one_and_training_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*RUN, "--output-dir", str(tmp_path / "plain"))[0] == 0
    expected = read_result(result_files(tmp_path / "plain")[0])
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        disk = FullDisk(patch, lambda name: ".ckpt." in name, room=1000, spare=1)  # the first checkpoint fits
        code, _, err = run_cli(*RUN, "--output-dir", str(out), "--keep-checkpoints", capsys=capsys)
    assert code == 0 and disk.hits == 1, err  # checkpoints at steps 2 and 4: the second hits the full disk
    assert "could not write the checkpoint of step 4" in err and "the previous checkpoint is intact" in err
    [path] = result_files(out)
    assert read_result(path).metrics == expected.metrics  # training was not disturbed
    assert torch.load(path.with_suffix(".ckpt"), weights_only=True)["step"] == 2  # the intact one
    assert temporaries(out) == []


def test_full_disk_in_the_data_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = tmp_path / "remote.bin"
    remote.write_bytes(b"new content" * 1000)
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.bin").write_bytes(b"the previous copy")
    archive = tmp_path / "pack.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("pack/member.bin")
        info.size = 5000
        tar.addfile(info, io.BytesIO(b"m" * 5000))
    (data / "pack").mkdir()
    (data / "pack" / "member.bin").write_bytes(b"the previous member")
    with monkeypatch.context() as patch:
        FullDisk(patch, lambda name: True, room=1000)
        with pytest.raises(UserError, match="could not write the download of .* No space left on device; nothing"):
            download(remote.as_uri(), data / "file.bin", stream=io.StringIO())
        with pytest.raises(UserError, match="could not write .*member.bin: No space left on device") as err:
            safe_extract(archive, data)
        assert str(archive) in str(err.value)
    assert (data / "file.bin").read_bytes() == b"the previous copy"
    assert (data / "pack" / "member.bin").read_bytes() == b"the previous member"
    assert temporaries(data) == []
    tally("resources", "full-disk injections", 4)


def test_full_disk_anywhere_else_is_one_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's last line of defence: ENOSPC from any writer is one message, exit code 2."""
    from fpt_bench.cli import app as cli

    def full(args: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x"))

    monkeypatch.setitem(cli.COMMANDS, "schema", full)
    assert cli.main(["schema"]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device writing" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------- corrupt download
class Server:
    """Serves ``files`` from 127.0.0.1; ``faults`` lists what happens to successive requests ('corrupt':
    one byte changed, 'short': the body cut while Content-Length promises all of it, None: served as is)."""

    def __init__(self, files: dict[str, bytes], faults: list[str | None]) -> None:
        self.files, self.faults, self.requests = files, list(faults), 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests += 1
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                fault = server.faults.pop(0) if server.faults else None
                sent = body
                if fault == "corrupt":
                    sent = body[:10] + bytes([body[10] ^ 0xFF]) + body[11:]
                elif fault == "short":
                    sent = body[: len(body) // 2]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(sent)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    yield


@pytest.mark.parametrize("fault", ["corrupt", "short"])
def test_a_corrupt_download_is_fetched_again_and_never_used(tmp_path: Path, no_proxy: None, fault: str) -> None:
    body = bytes(range(256)) * 64
    md5 = hashlib.md5(body).hexdigest()
    dest = tmp_path / "data" / "file.bin"
    stream = io.StringIO()
    with Server({"file.bin": body}, [fault]) as server:
        download(server.url("file.bin"), dest, md5, stream=stream)
        assert server.requests == 2
    assert dest.read_bytes() == body
    assert "discarded, fetching it again" in stream.getvalue()
    assert temporaries(tmp_path / "data") == []
    with Server({"file.bin": body}, ["corrupt", fault]) as server:
        with pytest.raises(CorruptFileError, match="discarded .tried 2 time"):
            download(server.url("file.bin"), tmp_path / "data" / "never.bin", md5, stream=stream)
    assert not (tmp_path / "data" / "never.bin").exists() and temporaries(tmp_path / "data") == []
    tally("resources", "corrupt downloads detected", 3)


def test_fetch_of_an_archive_whose_first_download_is_corrupt(tmp_path: Path, no_proxy: None) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("pack/one.txt", "pack/two.txt"):
            blob = name.encode() * 50
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    archive = buffer.getvalue()
    with Server({"pack.tar.gz": archive}, ["corrupt"]) as server:
        files = [DataFile(name, server.url("pack.tar.gz"), hashlib.md5(name.encode() * 50).hexdigest(),
                          archive="pack.tar.gz", archive_md5=hashlib.md5(archive).hexdigest())
                 for name in ("pack/one.txt", "pack/two.txt")]
        states = fetch_files("demo", tmp_path / "data", files, stream=io.StringIO())
    assert [s.state for s in states] == ["ok", "ok"] and server.requests == 2
    assert (tmp_path / "data" / "pack" / "two.txt").read_bytes() == b"pack/two.txt" * 50
    tally("resources", "corrupt downloads detected", 1)
