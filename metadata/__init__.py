"""A lazy, caching instance metadata service."""

__version__ = "0.1.0"
