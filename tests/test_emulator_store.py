"""The emulator's store on a real SQLite file: keys, counts, and state sealed at rest under the account key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.sealing import Sealer, SealError
from batchbox.emulator.store import SCHEMA_VERSION, Store, StoreError

SAS = "sv=2023-11-03&sp=r&sig=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789%2B%2F%3D"
SECRET = "node-secret-Zx9_unique-value"


def _sealer(key: str = DEFAULT_ACCOUNT_KEY, name: str = DEFAULT_ACCOUNT_NAME) -> Sealer:
    return Sealer(key, name)


def _raw_bytes(db: Path) -> bytes:
    """Every byte SQLite keeps for the database: the file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_store_keys_are_case_insensitive_and_counts_group(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", _sealer())
    try:
        assert store.insert_job({"id": "Job1", "state": "active", "poolInfo": {"poolId": "P"}})
        assert not store.insert_job({"id": "JOB1", "state": "active"})
        docs = [{"id": f"T{i}", "state": "active", "requiredSlots": 2} for i in range(3)]
        assert store.insert_tasks("job1", [*docs, {"id": "t0", "state": "active"}]) == [True, True, True, False]
        done = store.get_task("JOB1", "t1")
        assert done is not None
        done["state"] = "completed"
        done["executionInfo"] = {"result": "failure"}
        etag = done["eTag"]
        store.update_task("job1", done)
        assert done["eTag"] != etag
        counts = store.task_counts("job1")
        assert (counts["active"], counts["completed"], counts["failed"], counts["succeeded"]) == (2, 1, 1, 0)
        assert counts["slots"]["active"] == 4
        assert [d["id"] for d in store.list_tasks("job1", after_key="t0")] == ["T1", "T2"]
        assert [d["id"] for d in store.list_tasks("job1", states=["completed"])] == ["T1"]
        store.delete_job("JOB1")
        assert store.get_job("job1") is None and store.list_tasks("job1") == []
    finally:
        store.close()
    reopened = Store(tmp_path / "state.db", _sealer())
    try:
        assert reopened.meta_get("schema_version") == str(SCHEMA_VERSION)
    finally:
        reopened.close()


def _fill(store: Store) -> None:
    store.insert_pool({"id": "pool", "startTask": {"commandLine": f"fetch 'https://a/b?{SAS}'"}})
    store.upsert_node("pool", {"id": "tvm-1", "state": "idle"}, secret=SECRET)
    store.insert_job({"id": "job", "state": "active", "poolInfo": {"poolId": "pool"}})
    task = {"id": "t1", "state": "active", "resourceFiles": [{"httpUrl": f"https://a/in.txt?{SAS}"}]}
    store.insert_tasks("job", [task, {"id": "t2", "state": "active", "commandLine": f"up --url 'https://a/c?{SAS}'"}])


def test_documents_and_node_secrets_are_sealed_on_disk_and_open_with_the_key(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = Store(db, _sealer())
    try:
        _fill(store)
        raw = _raw_bytes(db)
        assert b"sig=" not in raw and SECRET.encode() not in raw and b"commandLine" not in raw
        assert b"t1" in raw, "ids stay readable: they are the plain key columns"
        pool = store.get_pool("POOL")
        assert pool is not None and SAS in pool["startTask"]["commandLine"]
        assert store.get_node_secret("tvm-1") == SECRET
        assert [d["id"] for d in store.list_tasks("job")] == ["t1", "t2"]
    finally:
        store.close()


def test_state_written_under_another_account_key_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store(db, _sealer()).close()
    store = Store(db, _sealer())
    _fill(store)
    store.close()
    before = _raw_bytes(db)
    other = "b3RoZXIta2V5LW9mLWFub3RoZXItYWNjb3VudC0wMDAwMDAwMDAwMDAwMDA="
    for sealer in (_sealer(other), _sealer(DEFAULT_ACCOUNT_KEY, "anotheraccount")):
        with pytest.raises(StoreError, match="another Batch account key"):
            Store(db, sealer)
    assert _raw_bytes(db) == before
    reopened = Store(db, _sealer())
    try:
        assert reopened.get_node_secret("tvm-1") == SECRET
    finally:
        reopened.close()


def test_a_sealed_value_opens_only_in_its_own_context_and_unaltered() -> None:
    sealer = _sealer()
    sealed = sealer.seal("payload", "tasks")
    assert sealer.open(sealed, "tasks") == "payload"
    assert sealed != sealer.seal("payload", "tasks"), "a fresh nonce per value"
    with pytest.raises(SealError):
        sealer.open(sealed, "pools")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        sealer.open(tampered, "tasks")
    with pytest.raises(SealError):
        sealer.open(b"{}", "tasks")


def test_a_schema_1_state_is_sealed_in_place_and_its_plain_pages_are_gone(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(
        """
        CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
        CREATE TABLE pools (key TEXT PRIMARY KEY, id TEXT NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL,
            last_modified TEXT NOT NULL);
        CREATE TABLE nodes (id TEXT PRIMARY KEY, pool_key TEXT NOT NULL, doc TEXT NOT NULL, secret TEXT,
            container_id TEXT);
        CREATE TABLE jobs (key TEXT PRIMARY KEY, id TEXT NOT NULL, pool_key TEXT, state TEXT NOT NULL,
            seq INTEGER NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL, last_modified TEXT NOT NULL);
        CREATE TABLE tasks (job_key TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
            state TEXT NOT NULL, result TEXT, slots INTEGER NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL,
            last_modified TEXT NOT NULL, PRIMARY KEY (job_key, key));
        INSERT INTO meta VALUES ('schema_version', '1');
        """
    )
    task = {"id": "T1", "state": "completed", "commandLine": f"run '{SAS}'", "eTag": "0x1", "lastModified": "x"}
    conn.execute("INSERT INTO pools VALUES ('p', 'p', ?, '0x1', 'x')", (json.dumps({"id": "p"}),))
    conn.execute("INSERT INTO nodes VALUES ('n1', 'p', ?, ?, 'c1')", (json.dumps({"id": "n1"}), SECRET))
    conn.execute("INSERT INTO jobs VALUES ('j', 'j', 'p', 'active', 1, ?, '0x1', 'x')", (json.dumps({"id": "j"}),))
    conn.execute(
        "INSERT INTO tasks VALUES ('j', 't1', 'T1', 7, 'completed', 'success', 1, ?, '0x1', 'x')", (json.dumps(task),)
    )
    conn.close()
    assert b"sig=" in _raw_bytes(db)

    store = Store(db, _sealer())
    try:
        assert store.meta_get("schema_version") == str(SCHEMA_VERSION)
        assert store.get_task("j", "t1") == task and store.get_node_secret("n1") == SECRET
        assert store.get_node_container("n1") == "c1"
        assert store.insert_tasks("j", [{"id": "t2", "state": "active"}]) == [True]
        assert [seq for seq, _ in store.list_tasks_page("j")] == [7, 8], "task sequence numbers carry on"
        raw = _raw_bytes(db)
        assert b"sig=" not in raw and SECRET.encode() not in raw
    finally:
        store.close()


def test_subtasks_are_sealed_kept_across_a_reopen_and_go_with_their_job(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = Store(db, _sealer())
    failure = {"category": "usererror", "code": "FailureExitCode", "message": f"fetch 'https://a/b?{SAS}' failed"}
    subtasks = [
        {"id": 1, "state": "completed", "exitCode": 0, "nodeInfo": {"nodeId": "tvm-1"}},
        {"id": 2, "state": "completed", "exitCode": 7, "failureInfo": failure, "nodeInfo": {"nodeId": "tvm-2"}},
    ]
    try:
        store.insert_job({"id": "Job", "state": "active"})
        store.insert_tasks("job", [{"id": "MPI", "state": "completed"}, {"id": "other", "state": "completed"}])
        store.put_subtasks("job", "MPI", [{"id": 1, "state": "running"}])
        store.put_subtasks("JOB", "mpi", subtasks)  # the latest run's replace the earlier run's
        store.put_subtasks("job", "other", subtasks[:1])
        assert b"sig=" not in _raw_bytes(db) and b"FailureExitCode" not in _raw_bytes(db)
    finally:
        store.close()
    store = Store(db, _sealer())
    try:
        assert store.get_subtasks("job", "mpi") == subtasks
        store.delete_task("job", "mpi")
        assert store.get_subtasks("job", "mpi") == subtasks, "kept until delete_subtasks: the delete's hooks read them"
        store.delete_subtasks("job", "MPI")
        assert store.get_subtasks("job", "mpi") == [] and store.get_subtasks("job", "other") == subtasks[:1]
        store.delete_job("job")
        assert store.get_subtasks("job", "other") == []
        assert store.get_subtasks("nojob", "notask") == []
    finally:
        store.close()
