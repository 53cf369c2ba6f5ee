"""The public plugin API: what tasks, backbones, freeze policies, suites and executors are built from.

Everything defined here is re-exported by ``fpt_bench`` itself; plugins import from ``fpt_bench``."""
