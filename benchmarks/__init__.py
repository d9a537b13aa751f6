"""The benchmark scripts, run as modules from the repository root:

    python -m benchmarks.speed.bench_training --help
    python -m benchmarks.quality.bench_quality --help

``speed`` measures time and memory; ``quality`` measures clustering quality and gathers
the evidence behind the defaults. ``_common`` holds what the scripts share.
"""
