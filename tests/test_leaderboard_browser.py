"""The published page in a real headless browser (Debian's ``chromium``): it loads from the file, shows the
expected rows, sorting a column reorders them (the page's own sorting code, driven by ``#sort=table:column``,
the same function a header click calls), and a ``<script>`` planted in a task description or a result string
shows as text and never runs. Skipped, with the reason, where no Chromium is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lb_support import TINY, make_result, test_host, write

from fpt_bench.leaderboard.page import publish

PLANTED = '<script>document.title="pwned"</script>'


def _browser() -> str | None:
    for name in (os.environ.get("FPT_BENCH_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


BROWSER = _browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium here (Debian: apt-get install -y chromium; or set FPT_BENCH_CHROMIUM)")


class Dom(HTMLParser):
    """Rows of each table (cell texts), the title, the scripts and the task descriptions of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.table_attrs: dict[str, dict[str, str | None]] = {}
        self.title = ""
        self.scripts = 0
        self.dd: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
            self.table_attrs[self._table] = a
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "script":
            self.scripts += 1
        elif tag in ("title", "dd"):
            self._in = tag
            if tag == "dd":
                self.dd.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in == "title":
            self.title += data
        elif self._in == "dd":
            self.dd[-1] += data


def dump(page: Path, fragment: str, tmp_path: Path) -> Dom:
    profile = tmp_path / f"profile-{abs(hash(fragment))}"
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri() + fragment]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # type: ignore[arg-type]
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Dom()
    dom.feed(proc.stdout)
    return dom


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site") / "leaderboard"
    results = folder / "results"
    (folder).mkdir()
    (folder / "leaderboard.toml").write_text('suites = ["two_rows"]\n')
    for seed, acc in enumerate((0.62, 0.66)):
        write(results, make_result("bit_xor", seed=seed, test=acc, val=acc))
    write(results, make_result("bit_memory", test=0.91, val=0.9))
    write(results, make_result("bit_memory", policy="full", test=0.55, val=0.5))
    write(results, make_result("planted", test=0.73, val=0.7, backbone_args={**TINY, "source": PLANTED}))
    publish(folder, test_host())
    return folder / "index.html"


def _means(dom: Dom) -> list[str]:
    return [row[11] for row in dom.tables["all-long"]]  # the "mean" column of the long table


def test_page_loads_with_the_expected_rows(page: Path, tmp_path: Path) -> None:
    dom = dump(page, "", tmp_path)
    assert dom.title == "fpt-bench leaderboard"
    paper = {row[0]: row[1:] for row in dom.tables["two_rows-paper"]}
    assert set(paper) == {"FPT", "Full"}
    assert paper["FPT"][0].startswith("91.0 (n=1) · paper 100.0 (Δ −9.0)")
    assert paper["FPT"][1].startswith("64.0 ± 2.8 (n=2)")
    assert paper["Full"] == ["55.0 (n=1)", "missing · paper 100.0†"]
    assert sorted(_means(dom)) == ["55.0", "64.0", "73.0", "91.0"]
    assert "data-sorted" not in dom.table_attrs["all-long"]


def test_sorting_a_column_reorders_the_rows(page: Path, tmp_path: Path) -> None:
    before = _means(dump(page, "", tmp_path))
    up = dump(page, "#sort=all-long:11", tmp_path)
    down = dump(page, "#sort=all-long:11:desc", tmp_path)
    assert _means(up) == ["55.0", "64.0", "73.0", "91.0"] != before
    assert _means(down) == ["91.0", "73.0", "64.0", "55.0"]
    assert up.table_attrs["all-long"]["data-sorted"] == "11:asc"
    by_task = dump(page, "#sort=all-long:2:desc", tmp_path)  # a text column
    assert [row[2] for row in by_task.tables["all-long"]] == ["planted", "bit_xor", "bit_memory", "bit_memory"]


def test_planted_script_shows_as_text_and_never_runs(page: Path, tmp_path: Path) -> None:
    dom = dump(page, "", tmp_path)
    assert dom.title == "fpt-bench leaderboard"  # the planted script would have renamed the page
    assert dom.scripts == 1  # only the page's own sorting script
    assert any(PLANTED in text for text in dom.dd)  # the task description, as text
    assert any(PLANTED in row[3] for row in dom.tables["all-long"])  # the result's backbone option, as text
