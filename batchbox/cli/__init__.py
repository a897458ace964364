"""The ``batchbox`` command line."""
