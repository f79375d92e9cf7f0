"""s3proxy backend plugin for Azure Blob Storage (obstore AzureStore)."""
