"""Scripts beside the package: the demo, benchmarks, the papers' experiments, data and model shipping.

Each runs from the repository root as ``python -m tools.<name>`` (``--help``
lists its flags) and can be imported there as ``tools.<name>``; shared helpers
are in :mod:`tools.common`. They are not installed with the package.
"""
