"""The paper's experiments as named grids of cells, with the paper's numbers (test accuracy, %)."""

from __future__ import annotations

from fpt_bench import SuiteCell, SuiteSpec, hookimpl

SOURCE = "Lu et al. 2021 (arXiv 2103.05247 v2), Table 1"

BITS = SuiteSpec(
    name="bits",
    description="the generated bit tasks under FPT with GPT-2 base (Table 1, first two columns)",
    cells=[SuiteCell(task="bit_memory", label="FPT"), SuiteCell(task="bit_xor", label="FPT")],
    reference={"FPT": {"bit_memory": 100.0, "bit_xor": 100.0}},
    source=SOURCE,
)


@hookimpl
def fpt_bench_register_suites(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(BITS, name=BITS.name)
