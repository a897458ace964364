"""Top-N word count task of the sample workload; standalone, stdlib only, Python >= 3.9.

Usage on a node::

    python3 topn.py --filepath taskdata1.txt --numwords 3 [--container-url URL_WITH_SAS]

Counting follows the Azure Batch Python tutorial task, ``[w.strip(string.punctuation) for w in text.split()]``
and ``Counter(words).most_common(n)``: split on any (Unicode) whitespace, strip ASCII punctuation from both ends
only (inner and non-ASCII punctuation stay), case-sensitive, ties in first-seen order. Deliberate differences:

* tokens that are empty after stripping (``"---"``) are DROPPED: a punctuation-only token is not a word
  (the original counted them as the empty string ``''``);
* a leading UTF-8 byte-order mark is not part of the first word;
* invalid UTF-8 does not crash: it is decoded with U+FFFD replacement and reported once on stderr with the
  byte offset of the first invalid sequence.

The file is streamed in binary chunks, so memory is the chunk size plus the vocabulary (plus the longest run
without whitespace, which has to be held whole). The report ``<stem>_OUTPUT<ext>`` is written to the current
directory and, with ``--container-url``, uploaded as a block blob of that name. Exit codes: 0 success,
1 input or output file error, 2 usage error (argparse), 3 upload failure (the local report stays).
"""

from __future__ import annotations

import argparse
import base64
import codecs
import http.client
import os
import string
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CHUNK_SIZE",
    "UploadError",
    "WordCount",
    "count_words",
    "format_report",
    "main",
    "output_name",
    "upload_blob",
]

CHUNK_SIZE = 1024 * 1024
BLOCK_SIZE = 4 * 1024 * 1024
X_MS_VERSION = "2021-08-06"
EXIT_FILE_ERROR = 1
EXIT_UPLOAD_FAILED = 3
_PUNCTUATION = string.punctuation
_DASHES = "-" * 30
_NOT_SET = "(not set)"
_ENV_LINES = (
    ("Node: ", "AZ_BATCH_NODE_ID"),
    ("Task: ", "AZ_BATCH_TASK_ID"),
    ("Job:  ", "AZ_BATCH_JOB_ID"),
    ("Pool: ", "AZ_BATCH_POOL_ID"),
)


class WordCount(NamedTuple):
    """Result of :func:`count_words`.

    Attributes:
        counts: word -> occurrences, in first-seen order; never contains the empty string.
        tokens: whitespace-separated tokens seen, including punctuation-only ones.
        invalid_offset: byte offset of the first invalid UTF-8 sequence, or None if the file is valid.
    """

    counts: Counter[str]
    tokens: int
    invalid_offset: int | None


def count_words(path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE) -> WordCount:
    """Count the words of a UTF-8 text file in bounded memory.

    Args:
        path: the file to read.
        chunk_size: bytes read per step; any value >= 1 gives the same result.

    Returns:
        The counts, the token total and the offset of the first invalid UTF-8 byte (if any).

    Raises:
        OSError: the file cannot be read.
    """
    counts: Counter[str] = Counter()
    tokens = 0
    invalid: int | None = None
    pending = b""  # undecoded bytes: an incomplete UTF-8 sequence at the end of the last chunk
    offset = 0  # file offset of pending[0]
    carry: list[str] = []  # pieces of a token that may go on in the next chunk (a list keeps long ones linear)
    at_start = True
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_size)
            final = not chunk
            data = pending + chunk if pending else chunk
            try:
                text, used = codecs.utf_8_decode(data, "strict" if invalid is None else "replace", final)
            except UnicodeDecodeError as exc:
                invalid = offset + exc.start
                text, used = codecs.utf_8_decode(data, "replace", final)
            pending = data[used:]
            offset += used
            if at_start and text:
                at_start = False
                if text[0] == "\ufeff":
                    text = text[1:]
            if not text and not final:
                continue
            words = text.split()
            glued = bool(carry) and bool(text) and not text[0].isspace()  # the carried token goes on
            open_end = not final and not text[-1].isspace()  # the last token may go on in the next chunk
            if glued and open_end and len(words) == 1:
                carry.append(words[0])
                continue
            if carry:
                if glued:
                    words[0] = "".join(carry) + words[0]
                else:
                    words.insert(0, "".join(carry))
                carry = []
            if open_end:
                carry.append(words.pop())
            tokens += len(words)
            counts.update(map(str.strip, words, repeat(_PUNCTUATION)))
            if final:
                break
    counts.pop("", None)
    return WordCount(counts, tokens, invalid)


def output_name(filepath: str) -> str:
    """Return the report file name for an input path: ``dir/taskdata1.txt`` -> ``taskdata1_OUTPUT.txt``."""
    p = Path(filepath)
    return f"{p.stem}_OUTPUT{p.suffix}"


def format_report(top: list[tuple[str, int]], env: Mapping[str, str]) -> str:
    """Render the report: header, one ``word:\\tcount`` line per word, then the Batch ids from ``env``."""
    lines = ["Word\tCount", _DASHES, *(f"{word}:\t{count}" for word, count in top), _DASHES]
    lines += [label + (env.get(var) or _NOT_SET) for label, var in _ENV_LINES]
    return "\n".join(lines) + "\n"


class UploadError(Exception):
    """An upload failed; the message never contains the SAS query string."""


def _put(url: str, body: bytes, headers: Mapping[str, str], retries: int, backoff: float) -> None:
    """PUT ``body``; retry connection errors and 5xx with exponential backoff, fail at once on other statuses."""
    reason = ""
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            return
        except urllib.error.HTTPError as exc:
            code = exc.headers.get("x-ms-error-code") if exc.headers else None
            reason = f"HTTP {exc.code}" + (f" {code}" if code else "")
            exc.close()
            if exc.code < 500:
                break
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, garbled replies
            reason = f"connection error: {getattr(exc, 'reason', None) or exc}"
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    raise UploadError(reason)


def upload_blob(
    path: Path, container_url: str, *, block_size: int = BLOCK_SIZE, retries: int = 3, backoff: float = 1.0
) -> str:
    """Upload ``path`` as the block blob ``<container>/<path.name>``.

    Files up to ``block_size`` use one Put Blob; larger ones Put Block + Put Block List.

    Args:
        path: the local file.
        container_url: container URL with a SAS query (write permission).
        block_size: the largest single request body.
        retries: extra tries after a connection error or 5xx.
        backoff: first retry delay in seconds, doubled each time.

    Returns:
        The blob URL without its query string.

    Raises:
        UploadError: the upload failed; its message is safe to print.
    """
    base, _, sas = container_url.partition("?")
    blob = base.rstrip("/") + "/" + urllib.parse.quote(path.name)

    def url(op: str) -> str:
        query = "&".join(part for part in (op, sas) if part)
        return f"{blob}?{query}" if query else blob

    headers = {"x-ms-version": X_MS_VERSION}
    content_type = "text/plain; charset=utf-8"
    try:
        if path.stat().st_size <= block_size:
            put_headers = {**headers, "x-ms-blob-type": "BlockBlob", "Content-Type": content_type}
            _put(url(""), path.read_bytes(), put_headers, retries, backoff)
            return blob
        ids: list[str] = []
        with path.open("rb") as f:
            for block in iter(lambda: f.read(block_size), b""):
                ids.append(base64.b64encode(f"{len(ids):08d}".encode()).decode())
                _put(url("comp=block&blockid=" + urllib.parse.quote(ids[-1])), block, headers, retries, backoff)
        body = '<?xml version="1.0" encoding="utf-8"?><BlockList>'
        body += "".join(f"<Latest>{i}</Latest>" for i in ids) + "</BlockList>"
        list_headers = {**headers, "x-ms-blob-content-type": content_type, "Content-Type": "application/xml"}
        _put(url("comp=blocklist"), body.encode(), list_headers, retries, backoff)
    except (UploadError, OSError, ValueError) as exc:  # HTTP failures, local read errors, malformed URLs
        raise UploadError(str(exc).replace(sas, "<redacted>") if sas else str(exc)) from None
    return blob


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write the N most common words of a text file.")
    parser.add_argument("--filepath", required=True, help="UTF-8 text file to count")
    parser.add_argument("--numwords", required=True, type=int, help="how many words to report (>= 1)")
    parser.add_argument("--container-url", help="blob container URL with a write SAS to upload the report to")
    args = parser.parse_args(argv)
    if args.numwords < 1:
        parser.error("--numwords must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the task; return the process exit code (see the module docstring)."""
    args = _parse_args(argv)
    try:
        result = count_words(args.filepath)
    except OSError as exc:
        print(f"topn: cannot read {args.filepath}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FILE_ERROR
    if result.invalid_offset is not None:
        print(
            f"topn: warning: {args.filepath}: invalid UTF-8 at byte offset {result.invalid_offset} "
            "(replaced with U+FFFD, counting goes on)",
            file=sys.stderr,
        )
    top = result.counts.most_common(args.numwords)
    out = Path(output_name(args.filepath))
    tmp = Path(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(format_report(top, os.environ))
        os.replace(tmp, out)
    except OSError as exc:
        print(f"topn: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        tmp.unlink(missing_ok=True)
        return EXIT_FILE_ERROR
    suffix = ""
    if args.container_url:
        try:
            suffix = ", uploaded to " + upload_blob(out, args.container_url)
        except UploadError as exc:
            target = args.container_url.partition("?")[0]
            print(f"topn: upload of {out.name} to {target} failed: {exc}", file=sys.stderr)
            return EXIT_UPLOAD_FAILED
    print(f"{out.name}: {len(top)} words from {result.tokens} tokens{suffix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
