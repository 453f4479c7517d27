"""Benchmark data: records, loaders, the synthetic benchmark and the real-benchmark readers."""
