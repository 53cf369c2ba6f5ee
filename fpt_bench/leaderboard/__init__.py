"""The leaderboard: result files -> aggregated tables (mean ± std over seeds, the paper's numbers beside them),
rendered as Markdown, LaTeX, HTML, CSV or JSON, plotted, and published as a static page.

Result files are read only through ``fpt_bench.results.store.read_result`` and checked by
``fpt_bench.leaderboard.validate`` before they count.
"""

from fpt_bench.leaderboard.collect import Column, Loaded, Stat, Table, build_table, load_results, steps_to_threshold
from fpt_bench.leaderboard.render import FORMATS, LAYOUTS, render, to_dict
from fpt_bench.leaderboard.validate import check_result_file, provenance_problems

__all__ = ["FORMATS", "LAYOUTS", "Column", "Loaded", "Stat", "Table", "build_table", "check_result_file",
           "load_results", "provenance_problems", "render", "steps_to_threshold", "to_dict"]
