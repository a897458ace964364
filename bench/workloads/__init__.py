"""Workloads the benchmarks run through ``batchbox run``."""
