"""The shell commands of the docs, as the docs test runs them.

Every ```bash block in README.md and docs/*.md is preceded by a marker that says what the docs test does with it:

- ``<!-- docs: run -->``: run each command of the block, in order, in one working folder per document (the
  document's earlier blocks ran there before); each must exit 0.
- ``<!-- docs: run, expect "TEXT", "TEXT" -->``: and its output (stdout and stderr) holds each TEXT.
- ``<!-- docs: run, exit N -->``: the block's last command must end with exit code N (a documented refusal).
- ``<!-- docs: run, needs PATH -->``: run only where PATH exists (e.g. Debian's Fashion-MNIST files); elsewhere
  the test says it skipped them and why.
- ``<!-- docs: skip: REASON -->``: not run, for a reason a reader can check (it needs a GPU, the network, a cluster).

Installing is set aside (the test runs in the environment the suite was installed into): ``python3 -m venv``,
``. .venv/bin/activate`` and ``pip install`` commands, and the ``&&``-chained parts that are one of these, are
skipped. A block without a marker is an error: a command the docs show is run or says why not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"<!--\s*docs:\s*(?P<body>.*?)\s*-->", re.S)
FENCE = re.compile(r"^```(?P<lang>bash|sh|console)\s*$")
INSTALL = (re.compile(r"^python3? -m venv\b"), re.compile(r"^(\.|source) \S*activate\b"),
           re.compile(r"^(python3? -m )?pip install\b"), re.compile(r"^apt-get\b"))


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    text: str
    action: str  # run | skip | none
    expect: list[str] = field(default_factory=list)
    exit_code: int = 0
    reason: str = ""
    needs: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    def commands(self) -> list[str]:
        """The block's commands: continuation lines joined, here-documents kept whole, comments dropped, install
        steps set aside."""
        joined, current = [], ""
        lines = iter(self.text.splitlines())
        for raw in lines:
            line = raw.rstrip()
            heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
            if heredoc:  # `cat > file <<'EOF'` ... `EOF`: one command
                body = [line]
                for rest in lines:
                    body.append(rest)
                    if rest.strip() == heredoc.group(1):
                        break
                joined.append("\n".join(body))
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            joined.append(current)
            current = ""
        out = []
        for line in joined:
            if "\n" in line:  # a here-document: as written
                out.append(line)
                continue
            line = _strip_comment(line).strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split("&&")]
            kept = [p for p in parts if not any(r.search(p) for r in INSTALL)]
            if kept:
                out.append(" && ".join(kept))
        return out


def _strip_comment(line: str) -> str:
    """``cmd  # note`` -> ``cmd`` (a ``#`` inside quotes stays)."""
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        before = "\n".join(lines[max(0, start - 3):start])
        markers = list(MARKER.finditer(before))
        block = Block(path, start + 1, "\n".join(body), "none")
        if markers:
            _apply(block, markers[-1].group("body"))
        found.append(block)
    return found


def _apply(block: Block, body: str) -> None:
    if body.startswith("skip"):
        block.action = "skip"
        block.reason = body.partition(":")[2].strip()
        return
    if not body.startswith("run"):
        raise ValueError(f"{block.where}: unknown docs marker {body!r}")
    block.action = "run"
    block.expect = re.findall(r'"([^"]*)"', body)
    code = re.search(r"exit\s+(\d+)", body)
    block.exit_code = int(code.group(1)) if code else 0
    needs = re.search(r"needs\s+(\S+)", body.replace(",", " "))
    block.needs = needs.group(1) if needs else ""
