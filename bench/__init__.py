"""Benchmarks: each script prints `name: value unit` lines and a headline ratio."""
