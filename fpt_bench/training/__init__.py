"""Training one cell: batches, the loop, evaluation, speed settings, seeding, determinism, data parallelism."""
