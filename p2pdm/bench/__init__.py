"""Benchmarks (``scripts/bench``): each figure is reported beside a baseline
measured in the same run and written to docs/benchmarks.md.
"""
