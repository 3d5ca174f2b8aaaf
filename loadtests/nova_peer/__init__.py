"""A real Nova 34.0.0 beside our service: its venv, its databases made by nova-manage,
instances made by its objects, its own metadata app, and tools to compare with it."""
