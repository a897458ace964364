"""Backends of batchbox: ``local`` (Docker + Azurite + the Batch emulator) and, later, Azure."""

__all__: list[str] = []
