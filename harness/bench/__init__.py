"""Benchmarks: the harness's loops, runs in flight, batched runs and whole claims tiers, timed; no run needs them."""
