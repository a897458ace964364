"""``python -m batchbox.emulator [OPTIONS]``: the same as ``batchbox emulator``."""

from __future__ import annotations

from batchbox.emulator.command import emulator

if __name__ == "__main__":
    emulator(prog_name="python -m batchbox.emulator")
