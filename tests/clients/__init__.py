"""Real metadata clients (cloud-init, botocore) reading a running server over loopback."""
