"""Seeded data: synthetic tasks with known alignment and bundled real data (nothing is downloaded)."""
