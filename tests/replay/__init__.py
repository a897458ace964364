"""Replay of recorded Azure Batch exchanges (VCR cassettes) against the emulator; see ``test_recorded_exchanges``."""
