"""Funnel and journey analytics as pure functions: rows in, figures out (no I/O)."""
