"""s3proxy-transform: at-rest encryption and compression as a storage layer."""
