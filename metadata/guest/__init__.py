"""The guest listener: identify the caller, match the path, load, render, record."""
