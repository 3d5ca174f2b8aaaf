"""Where instance data comes from: the slice source interface and its implementations
(the project's own store, `metadata.store.source`)."""

from metadata.sources.base import SliceRead, SliceSource

__all__ = ["SliceRead", "SliceSource"]
