"""Test helpers (tiny models built from configs); imported by tests and scripts only, never by runtime code."""
