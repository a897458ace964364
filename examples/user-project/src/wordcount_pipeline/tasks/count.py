"""Node task: count the words of one text file and write them as JSON (``count.py INPUT OUTPUT``)."""

import json
import re
import sys
from collections import Counter


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as handle:
        words = re.findall(r"[a-z']+", handle.read().lower())
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(dict(Counter(words)), handle, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
