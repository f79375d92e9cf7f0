"""Entry point module of the s3proxy-aws plugin.

The AWS S3 backend (obstore ``S3Store`` with managed identity) is not registered yet:
it is tracked by the issue "Cloud backend plugins". The package exists so that the
workspace, packaging and plugin discovery are exercised end to end.
"""
