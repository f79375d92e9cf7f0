"""s3proxy benchmarks: the proxy against the backend directly, measured side by side.

``python -m bench --quick`` (a few minutes) or ``python -m bench`` (the full sizes of
docs/benchmarks.md). See bench/__main__.py for the options and docs/benchmarks.md for
the method.
"""
