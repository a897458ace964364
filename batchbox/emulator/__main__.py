"""``python -m batchbox.emulator [OPTIONS]``: the same as ``batchbox emulator``."""

from __future__ import annotations

from batchbox.cli.emulator_cmd import emulator

if __name__ == "__main__":
    emulator(prog_name="python -m batchbox.emulator")
