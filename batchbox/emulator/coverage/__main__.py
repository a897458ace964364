"""``python -m batchbox.emulator.coverage [--check] [PATH]``: write (or check) docs/api-coverage.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batchbox.emulator.app import ROUTES
from batchbox.emulator.coverage.report import render

_DEFAULT = Path("docs") / "api-coverage.md"


def main(argv: list[str] | None = None) -> int:
    """Write the document, or with ``--check`` exit 1 when the file differs from what the code says."""
    parser = argparse.ArgumentParser(prog="python -m batchbox.emulator.coverage", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is out of date")
    parser.add_argument("path", nargs="?", type=Path, default=_DEFAULT)
    args = parser.parse_args(argv)
    text = render(ROUTES)
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run python -m batchbox.emulator.coverage", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
