"""s3proxy backend plugin for Amazon S3 (obstore S3Store)."""
