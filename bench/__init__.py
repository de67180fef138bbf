"""splight-runner's benchmark suite: ``python -m bench`` (``--smoke`` for CI).

Benchmarks here are not timed tests. Every figure is a ratio or a difference
measured side by side in the same run, each configuration in fresh
subprocesses, so a slow or busy machine moves both sides together and the
ratio stays meaningful. See ``docs/performance.md`` for the figures and how to
read them.
"""
