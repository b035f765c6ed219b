"""Benchmarks: figures printed and written as JSON, never asserted."""
