"""The Nova source: read a Nova deployment's databases and follow its notifications."""
