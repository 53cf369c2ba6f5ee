"""README.md and the docs cannot rot: every shell command they show is run here, in order, offline on a CPU, as a
reader would type it (install aside), or its block says why not (tests/docs_commands.py has the markers).

The README's new-user path is one of these runs: its install-and-run command (the first run), the offline suite
at smoke size, `ls cells`, the leaderboard and publishing every result the README's examples made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_commands import Block, blocks
from reliability_support import tally

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_SECONDS = 600  # one command (the first run trains two cells on a loaded 2-core machine)


def all_blocks() -> list[Block]:
    return [b for doc in DOCUMENTS for b in blocks(doc)]


def test_every_command_block_says_whether_the_docs_test_runs_it() -> None:
    unmarked = [b.where for b in all_blocks() if b.action == "none"]
    assert unmarked == [], "add <!-- docs: run --> or <!-- docs: skip: REASON --> before each"
    assert all(b.reason for b in all_blocks() if b.action == "skip"), "a skipped block says why"


def test_the_marker_reader() -> None:
    from docs_commands import _apply

    block = Block(Path("x.md"), 3, "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && \\\n"
                                   "  fpt-bench run --task bit_xor  # go\nfpt-bench ls '#1'  # listed", "none")
    _apply(block, 'run, needs /usr/share/datasets, expect "ok", "done"')
    assert block.commands() == ["fpt-bench run --task bit_xor", "fpt-bench ls '#1'"]
    assert (block.action, block.needs, block.expect, block.exit_code) == ("run", "/usr/share/datasets", ["ok", "done"],
                                                                          0)
    _apply(block, "run, exit 2")
    assert block.exit_code == 2
    _apply(block, "skip: needs a GPU")
    assert (block.action, block.reason) == ("skip", "needs a GPU")
    with pytest.raises(ValueError, match="unknown docs marker"):
        _apply(block, "sometimes")


def _environment(home: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # fpt-bench of this environment first on the PATH
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "FPT_BENCH_DATA": str(home / "data"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "FPT_BENCH_PRECISION_CACHE": str(home / "precision"),
            "XDG_CACHE_HOME": str(home / "cache"), "NO_COLOR": "1"}


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if any(b.action == "run" for b in blocks(d))],
                         ids=lambda d: d.name)
def test_the_commands_of_a_document_run(document: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(tmp_path)
    ran = skipped = 0
    for block in blocks(document):
        if block.action != "run":
            continue
        if block.needs and not Path(block.needs).exists():
            skipped += len(block.commands())
            print(f"{block.where}: not run here: {block.needs} does not exist")
            continue
        commands = block.commands()
        seen = ""
        for i, command in enumerate(commands):
            proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=COMMAND_SECONDS)
            output = proc.stdout + proc.stderr
            seen += output
            last = i == len(commands) - 1
            expected = block.exit_code if last else 0
            assert proc.returncode == expected, \
                f"{block.where}: `{command}` exited {proc.returncode}:\n{output[-3000:]}"
            assert "Traceback" not in output, f"{block.where}: `{command}`:\n{output[-3000:]}"
            if last:
                missing = [text for text in block.expect if text not in seen]
                assert not missing, f"{block.where}: the block did not print {missing}:\n{seen[-3000:]}"
            ran += 1
    tally("docs commands", f"{document.name}: run", ran)
    if skipped:
        tally("docs commands", f"{document.name}: not run (files absent)", skipped)
    assert ran or skipped
