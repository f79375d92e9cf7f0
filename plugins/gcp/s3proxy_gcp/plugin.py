"""Entry point module of the s3proxy-gcp plugin.

The Google Cloud Storage backend (obstore ``GCSStore`` with managed identity) is not registered yet:
it is tracked by the issue "Cloud backend plugins". The package exists so that the
workspace, packaging and plugin discovery are exercised end to end.
"""
