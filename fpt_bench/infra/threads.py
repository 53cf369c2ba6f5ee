"""CPU threads that wait politely.

PyTorch's CPU kernels run on OpenMP threads that, by default, spin between parallel regions. On a machine where
something else also runs (a laptop's browser, a shared server, CI), a spinning thread holds a core its partner
needs, and every small kernel waits for it: the README's first run took 13 min 8 s under a load of 6 on 2 cores
with spinning threads and 1 min 45 s with sleeping ones, to the same results (benchmarks/README.md). So unless
the user chose otherwise, OpenMP threads sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``).

OpenMP reads this once, when the runtime starts (when torch is first imported): ``fpt_bench`` calls
:func:`passive_openmp` before it imports torch. It changes nothing when torch was imported before.
"""

from __future__ import annotations

import os


def passive_openmp() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set (inherited by worker processes)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
