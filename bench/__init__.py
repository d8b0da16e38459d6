"""Benchmarks; `make bench` runs them all and rewrites BENCHMARKS.md.

Each module `bench/bench_<name>.py` defines ``run() -> Section`` (sync or async). Every
figure is reported beside a baseline measured in the same run, because the machine
is shared and noisy.
"""
