"""Scripts that run on the Batch nodes (standard library only)."""
