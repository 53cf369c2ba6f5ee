"""``python -m fpt_bench.cli`` (for torchrun) is the ``fpt-bench`` command."""

import sys

from fpt_bench.cli import main

sys.exit(main())
