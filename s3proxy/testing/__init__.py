"""Test helpers for s3proxy and its plugins (needs the dev dependencies: pytest,
pytest-asyncio; the emulators need moto[server], Azurite, cryptography).

- ``backend_contract.BackendContract``: the suite every storage backend runs;
  ``cloud_contract.CloudBackendContract`` adapts it to backends over one cloud bucket.
- ``emulators``: moto, Azurite and the repo's fake GCS server as test fixtures use them.
- ``fake_endpoints``: local stand-ins for cloud identity endpoints (token exchanges,
  instance metadata), to test the credential chains' token paths.
"""
