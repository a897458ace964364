"""Node task: add up the JSON word counts of a directory into one JSON file (``merge.py DIRECTORY OUTPUT``)."""

import json
import os
import sys
from collections import Counter


def main(directory: str, target: str) -> None:
    total: Counter[str] = Counter()
    for root, _dirs, files in os.walk(directory):
        for name in sorted(files):
            if name.endswith(".json"):
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    total.update(json.load(handle))
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(dict(total), handle, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
