"""Benchmark records, the synthetic benchmark, real-benchmark loaders and the demo model teacher."""
