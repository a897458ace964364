"""Tests of the top-N words task script (batchbox/node/tasks/topn.py), run as a subprocess and imported."""

from __future__ import annotations

import base64
import importlib.util
import os
import random
import socket
import string
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "batchbox" / "node" / "tasks" / "topn.py"
SEED_DIR = REPO.parent / "shared" / "seed_data"
EXAMPLES_DIR = REPO / "examples" / "topn_words" / "data"
BOM = b"\xef\xbb\xbf"
SAS = "sv=2021-08-06&ss=b&srt=co&sp=w&se=2099-01-01T00%3A00%3A00Z&sig=SeCrEtSiGnAtUrE%2Fabc%3D"
AZ_VARS = {
    "AZ_BATCH_NODE_ID": "tvmps_node1",
    "AZ_BATCH_TASK_ID": "topNtask0",
    "AZ_BATCH_JOB_ID": "PythonTutorialJob",
    "AZ_BATCH_POOL_ID": "PythonTutorialPool",
}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("topn_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


topn = _load()


def reference(text: str) -> Counter[str]:
    """The tutorial's counting, minus the two documented differences (leading BOM, empty tokens)."""
    counts = Counter(w.strip(string.punctuation) for w in text.removeprefix("\ufeff").split())
    counts.pop("", None)
    return counts


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AZ_BATCH_") and "proxy" not in k.lower()}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def report_words(path: Path) -> list[tuple[str, int]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    end = lines.index("-" * 30, 2)
    return [(word[:-1], int(count)) for word, count in (line.split("\t") for line in lines[2:end])]


# --- seed data and format ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("taskdata1.txt", [("to", 18), ("and", 17), ("you", 14)]),
        ("taskdata2.txt", [("Storage", 11), ("for", 8), ("data", 7)]),
        ("taskdata3.txt", [("the", 10), ("of", 8), ("and", 6)]),
    ],
)
def test_seed_files_match_tutorial_answers(tmp_path: Path, name: str, expected: list[tuple[str, int]]) -> None:
    src = SEED_DIR / name
    if not src.is_file():
        pytest.skip(f"seed file {src} missing (shared/ is not beside the repo)")
    proc = run(tmp_path, "--filepath", str(src), "--numwords", "3")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / name.replace(".txt", "_OUTPUT.txt")
    assert report_words(out) == expected
    assert proc.stdout.startswith(f"{out.name}: 3 words from ")
    assert proc.stderr == ""


def test_exact_format_with_batch_env(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(BOM + b"b a b, c. a b\n")
    proc = run(tmp_path, "--filepath", "in.txt", "--numwords", "2", env=AZ_VARS)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "in_OUTPUT.txt").read_bytes() == (
        b"Word\tCount\n" + b"-" * 30 + b"\nb:\t3\na:\t2\n" + b"-" * 30 + b"\n"
        b"Node: tvmps_node1\nTask: topNtask0\nJob:  PythonTutorialJob\nPool: PythonTutorialPool\n"
    )
    assert proc.stdout == "in_OUTPUT.txt: 2 words from 6 tokens\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "in_OUTPUT.txt"]  # no temp file left


def test_format_without_batch_env_uses_placeholder(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n", encoding="utf-8")
    proc = run(tmp_path, "--filepath", "in.txt", "--numwords", "1", env={"AZ_BATCH_JOB_ID": "j1"})
    assert proc.returncode == 0, proc.stderr
    tail = (tmp_path / "in_OUTPUT.txt").read_text(encoding="utf-8").split("\n")[-5:]
    assert tail == ["Node: (not set)", "Task: (not set)", "Job:  j1", "Pool: (not set)", ""]


def test_output_goes_to_cwd_named_after_input(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "in" / "notes.v2.md").write_text("hello\n", encoding="utf-8")
    proc = run(tmp_path / "work", "--filepath", str(tmp_path / "in" / "notes.v2.md"), "--numwords", "1")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["notes.v2_OUTPUT.md"]
    assert topn.output_name("a/b/taskdata1.txt") == "taskdata1_OUTPUT.txt"
    assert topn.output_name("README") == "README_OUTPUT"


def test_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x\n", encoding="utf-8")
    zero = run(tmp_path, "--filepath", "in.txt", "--numwords", "0")
    assert zero.returncode == 2
    assert "--numwords must be >= 1" in zero.stderr
    missing = run(tmp_path, "--filepath", "nope.txt", "--numwords", "3")
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1
    assert "nope.txt" in missing.stderr
    assert not (tmp_path / "nope_OUTPUT.txt").exists()


# --- counting edge cases -----------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    proc = run(tmp_path, "--filepath", "empty.txt", "--numwords", "3")
    assert proc.returncode == 0, proc.stderr
    assert report_words(tmp_path / "empty_OUTPUT.txt") == []
    assert proc.stdout == "empty_OUTPUT.txt: 0 words from 0 tokens\n"
    assert topn.count_words(tmp_path / "empty.txt").counts == Counter()


def test_punctuation_only_tokens_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("--- hello, ... (hello) !! world ?! 'quoted' don't\n", encoding="utf-8")
    result = topn.count_words(path)
    assert list(result.counts.items()) == [("hello", 2), ("world", 1), ("quoted", 1), ("don't", 1)]
    assert "" not in result.counts
    assert result.tokens == 9  # punctuation-only tokens are still tokens
    assert result.invalid_offset is None


def test_numwords_larger_than_vocabulary(tmp_path: Path) -> None:
    (tmp_path / "v.txt").write_text("b a b\n", encoding="utf-8")
    proc = run(tmp_path, "--filepath", "v.txt", "--numwords", "50")
    assert proc.returncode == 0, proc.stderr
    assert report_words(tmp_path / "v_OUTPUT.txt") == [("b", 2), ("a", 1)]
    assert proc.stdout.startswith("v_OUTPUT.txt: 2 words from 3 tokens")


def test_ties_keep_first_seen_order_and_case(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("zeta Alpha alpha zeta alpha Alpha mid", encoding="utf-8")
    top = topn.count_words(path, chunk_size=3).counts.most_common(3)
    assert top == [("zeta", 2), ("Alpha", 2), ("alpha", 2)]


def test_crlf_and_unicode_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_bytes("one two\r\ntwo\u00a0three\u3000three\tthree\x0bfour\u2028four\r\n".encode())
    for size in (1, 2, 5, 1 << 20):
        counts = topn.count_words(path, chunk_size=size).counts
        assert list(counts.items()) == [("one", 1), ("two", 2), ("three", 3), ("four", 2)]


def test_bom_is_not_part_of_first_word(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(BOM + "word word \ufeffword".encode())
    for size in (1, 2, 3, 4, 64):
        counts = topn.count_words(path, chunk_size=size).counts
        # only the leading BOM is a byte-order mark; one inside the text is a character like any other
        assert counts == Counter({"word": 2, "\ufeffword": 1})


def test_non_ascii_words_and_punctuation_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_text("naïve café, «Grüße» — Übung. 東京 東京! ¿qué? café", encoding="utf-8")
    counts = topn.count_words(path, chunk_size=5).counts
    assert counts == Counter({"naïve": 1, "café": 2, "«Grüße»": 1, "—": 1, "Übung": 1, "東京": 2, "¿qué": 1})


def test_word_spanning_chunk_border_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("abcdefghij abcdefghij\nabcdefghij", encoding="utf-8")
    for size in range(1, 34):
        result = topn.count_words(path, chunk_size=size)
        assert result.counts == Counter({"abcdefghij": 3}), size
        assert result.tokens == 3


TEXT_ALPHABET = st.sampled_from(
    [*"ab Z.,;'-\"!?()\n\t\r", "\u00a0", "\u2003", "\u3000", "\x1c", "é", "ß", "—", "«", "»", "€", "東", "\U0001f600"]
)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=TEXT_ALPHABET, max_size=80), chunk_size=st.integers(1, 16), bom=st.booleans())
def test_chunked_counting_matches_reference(
    tmp_path_factory: pytest.TempPathFactory, text: str, chunk_size: int, bom: bool
) -> None:
    path = tmp_path_factory.mktemp("h") / "r.txt"
    path.write_bytes((BOM if bom else b"") + text.encode())
    result = topn.count_words(path, chunk_size=chunk_size)
    assert list(result.counts.items()) == list(reference(text).items())  # same counts, same first-seen order
    assert result.tokens == len(text.split())
    assert result.invalid_offset is None


def test_chunked_counting_matches_reference_on_random_prose(tmp_path: Path) -> None:
    words = ["Lamp", "lamp,", "lens.", "(tide)", "—", "naïve", "pool's", "---", "東京", "a", "b"]
    seps = [" ", "\n", "\r\n", "\t", "  ", "\u00a0"]
    rng = random.Random(7)
    text = "".join(rng.choice(words) + rng.choice(seps) for _ in range(3000))
    path = tmp_path / "prose.txt"
    path.write_bytes(BOM + text.encode())
    for size in (7, 4096):
        assert list(topn.count_words(path, chunk_size=size).counts.items()) == list(reference(text).items())


# --- invalid UTF-8 -----------------------------------------------------------------------------------------


def test_invalid_utf8_warns_once_with_offset_and_keeps_counting(tmp_path: Path) -> None:
    data = b"good words \xff here and \xc3 there good \xe2\x82 end good"
    (tmp_path / "bad.txt").write_bytes(data)
    proc = run(tmp_path, "--filepath", "bad.txt", "--numwords", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "bad.txt" in proc.stderr
    assert "offset 11" in proc.stderr
    assert report_words(tmp_path / "bad_OUTPUT.txt") == [("good", 3)]


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"ab \xe2\x82 cd", 3),  # truncated sequence in the middle
        (b"abc def \xe2\x82", 8),  # truncated sequence at end of file
        (BOM + b"x \x80", 5),  # stray continuation byte after a BOM
        (b"\xed\xa0\x80 surrogate", 0),  # encoded surrogate
        (b"ok \xe2\x82\xac ok", None),  # valid euro sign split across chunks
    ],
)
def test_invalid_offset_across_chunk_borders(tmp_path: Path, data: bytes, offset: int | None) -> None:
    path = tmp_path / "b.bin"
    path.write_bytes(data)
    expected = reference(data.decode("utf-8", "replace"))
    for size in range(1, len(data) + 2):
        result = topn.count_words(path, chunk_size=size)
        assert result.invalid_offset == offset, size
        assert result.counts == expected, size


def _first_invalid(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(
            [
                b"a",
                b" ",
                b"\n",
                b"\xc3\xa9",
                b"\xe2\x82\xac",
                b"\xe2\x82",
                b"\xff",
                b"\x80",
                b"\xf0\x9f\x98\x80",
                b"\xf0\x9f",
                b".",
                BOM,
            ]
        ),
        max_size=40,
    ),
    chunk_size=st.integers(1, 9),
)
def test_invalid_utf8_matches_one_shot_decode(
    tmp_path_factory: pytest.TempPathFactory, parts: list[bytes], chunk_size: int
) -> None:
    data = b"".join(parts)
    path = tmp_path_factory.mktemp("b") / "r.bin"
    path.write_bytes(data)
    result = topn.count_words(path, chunk_size=chunk_size)
    assert result.invalid_offset == _first_invalid(data)
    assert list(result.counts.items()) == list(reference(data.decode("utf-8", "replace")).items())


# --- larger than one chunk ---------------------------------------------------------------------------------


def test_file_bigger_than_chunk_size(tmp_path: Path) -> None:
    line = "Fresnel lens, lamp; keeper\u00a0rock tide—pool café\r\n"
    text = "\ufeff" + line * (topn.CHUNK_SIZE // len(line.encode()) + 999) + "lamp"
    assert len(text.encode()) > topn.CHUNK_SIZE
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    proc = run(tmp_path, "--filepath", "big.txt", "--numwords", "5")
    assert proc.returncode == 0, proc.stderr
    expected = reference(text)
    assert report_words(tmp_path / "big_OUTPUT.txt") == expected.most_common(5)
    assert proc.stdout.startswith(f"big_OUTPUT.txt: 5 words from {len(text.split())} tokens")


def test_example_texts_are_counted_like_reference(tmp_path: Path) -> None:
    files = sorted(EXAMPLES_DIR.glob("*.txt"))
    assert len(files) == 3
    for path in files:
        data = path.read_bytes()
        assert data.startswith(BOM)
        text = data.decode("utf-8")
        assert 300 <= len(text.split()) <= 800
        assert topn.count_words(path, chunk_size=7).counts.most_common(5) == reference(text).most_common(5)


# --- upload ------------------------------------------------------------------------------------------------


class BlobServer(ThreadingHTTPServer):
    """Records every PUT and answers with the next scripted (status, headers), the last one repeating."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, Message, bytes]] = []
        self.replies: list[tuple[int, dict[str, str]]] = [(201, {})]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/devstoreaccount1/output"


class _Handler(BaseHTTPRequestHandler):
    server: BlobServer

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests.append((self.path, self.headers, body))
        replies = self.server.replies
        status, headers = replies.pop(0) if len(replies) > 1 else replies[0]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def blob_server() -> Iterator[BlobServer]:
    server = BlobServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_upload_puts_block_blob(tmp_path: Path, blob_server: BlobServer) -> None:
    (tmp_path / "taskdata1.txt").write_text("to be or not to be\n", encoding="utf-8")
    proc = run(
        tmp_path,
        "--filepath",
        "taskdata1.txt",
        "--numwords",
        "2",
        "--container-url",
        f"{blob_server.url}?{SAS}",
        env=AZ_VARS,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(blob_server.requests) == 1
    path, headers, body = blob_server.requests[0]
    assert path == f"/devstoreaccount1/output/taskdata1_OUTPUT.txt?{SAS}"
    assert headers["x-ms-blob-type"] == "BlockBlob"
    assert headers["x-ms-version"] == topn.X_MS_VERSION
    assert headers["Content-Type"].startswith("text/plain")
    assert body == (tmp_path / "taskdata1_OUTPUT.txt").read_bytes()
    assert body.startswith(b"Word\tCount\n") and b"to:\t2\n" in body
    assert "sig=" not in proc.stdout and "SeCrEt" not in proc.stdout


def test_upload_forbidden_fails_with_one_redacted_line(tmp_path: Path, blob_server: BlobServer) -> None:
    blob_server.replies = [(403, {"x-ms-error-code": "AuthorizationFailure"})]
    (tmp_path / "taskdata1.txt").write_text("to be\n", encoding="utf-8")
    proc = run(
        tmp_path, "--filepath", "taskdata1.txt", "--numwords", "2", "--container-url", f"{blob_server.url}?{SAS}"
    )
    assert proc.returncode == topn.EXIT_UPLOAD_FAILED != 0
    assert proc.stderr.count("\n") == 1
    assert "403" in proc.stderr and "AuthorizationFailure" in proc.stderr
    assert "sig=" not in proc.stderr and "SeCrEt" not in proc.stderr
    assert len(blob_server.requests) == 1  # a 4xx is not retried
    assert (tmp_path / "taskdata1_OUTPUT.txt").is_file()


def test_upload_retries_5xx_with_backoff_then_succeeds(
    tmp_path: Path, blob_server: BlobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[float] = []
    monkeypatch.setattr(topn.time, "sleep", delays.append)  # records the backoff instead of waiting
    blob_server.replies = [(503, {"x-ms-error-code": "ServerBusy"}), (500, {}), (201, {})]
    path = tmp_path / "r_OUTPUT.txt"
    path.write_bytes(b"report\n")
    blob = topn.upload_blob(path, f"{blob_server.url}/?{SAS}", backoff=0.5)
    assert delays == [0.5, 1.0]
    assert blob == f"{blob_server.url}/r_OUTPUT.txt"
    assert [req[0] for req in blob_server.requests] == [f"/devstoreaccount1/output/r_OUTPUT.txt?{SAS}"] * 3


def test_upload_gives_up_after_retries(tmp_path: Path, blob_server: BlobServer) -> None:
    blob_server.replies = [(500, {"x-ms-error-code": "InternalError"})]
    path = tmp_path / "r_OUTPUT.txt"
    path.write_bytes(b"report\n")
    with pytest.raises(topn.UploadError, match="HTTP 500 InternalError"):
        topn.upload_blob(path, f"{blob_server.url}?{SAS}", retries=2, backoff=0.01)
    assert len(blob_server.requests) == 3


def test_upload_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "r_OUTPUT.txt"
    path.write_bytes(b"report\n")
    with pytest.raises(topn.UploadError, match="connection error") as info:
        topn.upload_blob(path, f"http://127.0.0.1:{port}/acct/output?{SAS}", retries=1, backoff=0.01)
    assert "sig=" not in str(info.value) and "SeCrEt" not in str(info.value)


def test_upload_large_file_uses_blocks(tmp_path: Path, blob_server: BlobServer) -> None:
    path = tmp_path / "big file_OUTPUT.txt"
    data = bytes(range(256)) * 3 + b"tail"
    path.write_bytes(data)
    topn.upload_blob(path, f"{blob_server.url}?{SAS}", block_size=300)
    requests = blob_server.requests
    assert len(requests) == 4  # 772 bytes -> 3 blocks + the block list
    prefix = "/devstoreaccount1/output/big%20file_OUTPUT.txt?"
    ids = []
    for path_qs, headers, _ in requests[:3]:
        assert path_qs.startswith(prefix + "comp=block&blockid=") and path_qs.endswith("&" + SAS)
        assert headers["x-ms-version"] == topn.X_MS_VERSION
        ids.append(path_qs[len(prefix + "comp=block&blockid=") : -len("&" + SAS)])
    assert b"".join(body for _, _, body in requests[:3]) == data
    decoded = [base64.b64decode(i.replace("%3D", "=")) for i in ids]
    assert len(set(decoded)) == 3 and len({len(d) for d in decoded}) == 1  # unique ids of equal length
    list_path, list_headers, list_body = requests[3]
    assert list_path == prefix + "comp=blocklist&" + SAS
    assert list_headers["x-ms-blob-content-type"].startswith("text/plain")
    expected_ids = "".join(f"<Latest>{i.replace('%3D', '=')}</Latest>" for i in ids)
    assert list_body.decode().endswith(f"<BlockList>{expected_ids}</BlockList>")
