"""s3proxy backend plugin for Google Cloud Storage (obstore GCSStore)."""
