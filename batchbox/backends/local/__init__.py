"""The local backend: Batch nodes as Docker containers, storage on Azurite."""

__all__: list[str] = []
