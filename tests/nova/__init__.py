"""Tests against a real Nova 34.0.0 (side venv, real schema, Nova's own metadata app)."""
