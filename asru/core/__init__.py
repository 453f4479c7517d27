"""Shared infrastructure: errors, run directories, model loading, decoder layers, prompting, OpenMP policy.

Imports no stage and nothing from asru.data, asru.demo, asru.eval, asru.stages, the pipeline or the CLI.
"""
