"""Persistence of the emulator: SQLite (WAL) under the state dir, the only place state lives.

Resources are stored as their REST JSON documents (camelCase, what GET returns minus ``odata.metadata``) next to a
few indexed columns. Documents and node secrets are sealed (:mod:`batchbox.emulator.sealing`): the plain columns hold
only ids, states, results, counts and times. Ids are unique case-insensitively: every key column holds ``id.lower()``.
One connection, used from the event-loop thread only; every call is short and synchronous.

:class:`Store` is assembled from one class per concern, each in its own module:

* ``store_database.StoreDatabase``: the connection, transactions, sealed documents, eTag stamps, the meta table;
* ``store_secrets.SecretRows``: secrets taken out of documents;
* ``store_pools.PoolRows``: pools and their nodes;
* ``store_jobs.JobRows``: jobs;
* ``store_tasks.TaskRows``: tasks, their counts, the dispatch queue and the subtasks of multi-instance tasks;
* ``store_schema``: the table layout and its upgrades.
"""

from __future__ import annotations

from batchbox.emulator.store_jobs import JobRows
from batchbox.emulator.store_pools import PoolRows
from batchbox.emulator.store_schema import SCHEMA_VERSION, StoreError
from batchbox.emulator.store_tasks import TASK_COLUMNS, TaskRows

__all__ = [
    "SCHEMA_VERSION",
    "TASK_COLUMNS",
    "Store",
    "StoreError",
]


class Store(PoolRows, JobRows, TaskRows):
    """The emulator's state in one SQLite database.

    Args:
        path: the database file (created with its directory when missing).
        sealer: seals documents and node secrets; built from the account key the state belongs to.
        disk: checked before every transaction starts (a full disk refuses it with nothing changed); the store
            keeps ``disk.room`` bytes allocated in its write-ahead log for a commit the disk fills up under.
            None: no checks.

    Attributes:
        runs: the history of the runs of tasks that ended (the portal's timeline; in no REST document).
        usage: node lifetimes, for the pool usage metrics (``node_usage.NodeUsage``).
        schedules: the job schedules (``job_tables.ScheduleTable``).
        job_node_tasks: per job and node, its preparation and release task status (``job_tables.JobNodeTaskTable``).

    Raises:
        StoreError: the database was written with a newer schema version or under another account key.
    """
