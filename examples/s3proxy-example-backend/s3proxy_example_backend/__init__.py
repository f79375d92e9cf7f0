"""Example s3proxy backend plugin (see docs/plugins.md)."""
