"""Plugin modules the CLI tests load with --plugin / S3PROXY_PLUGINS."""
