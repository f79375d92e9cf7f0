"""Test helpers for s3proxy and its plugins (needs the dev dependencies: pytest,
pytest-asyncio).

``backend_contract.BackendContract`` is the suite every storage backend runs.
"""
