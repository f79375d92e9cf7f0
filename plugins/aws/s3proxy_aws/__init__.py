"""s3proxy backend plugin for AWS S3 (obstore S3Store)."""
