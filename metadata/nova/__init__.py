"""The Nova source: instances read, read-only and lazily, from a Nova deployment's databases."""
