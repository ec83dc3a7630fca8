"""``python -m p2pdm.bench``: the pipeline benchmarks (see pipeline.py)."""

from p2pdm.bench.pipeline import main

if __name__ == "__main__":
    main()
