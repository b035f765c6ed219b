"""Workflows: the journey interpreter and nothing else. No I/O here, and no imports that do I/O."""
