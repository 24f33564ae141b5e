"""Shared plumbing below every stage: atomic file writes, seeds, limits, the version."""
