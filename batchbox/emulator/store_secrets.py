"""Secrets taken out of documents (registry passwords, mount keys ...), kept sealed in the meta table.

Each is kept under ``secret:<name>``, sealed under the account key with its name as the sealing context. Names
start with their owner's (``secret_owners``): deleting a pool, job, task or job schedule deletes its secrets by
that prefix.
"""

from __future__ import annotations

import base64

from batchbox.emulator.sealing import SealError
from batchbox.emulator.secret_owners import owned
from batchbox.emulator.store_database import StoreDatabase

__all__ = ["SecretRows"]


class SecretRows(StoreDatabase):
    """Named secrets, sealed, in the meta table: kept, found, listed by prefix, copied and deleted by owner."""

    def put_secret(self, name: str, value: str) -> None:
        """Keep a secret a document must not show (a registry password, a mount key), sealed, under ``name``."""
        sealed = self._sealer.seal(value, f"meta.secret:{name}")
        self.meta_set(f"secret:{name}", base64.b64encode(sealed).decode("ascii"))

    def get_secret(self, name: str) -> str | None:
        """The secret kept under ``name``, or None (also when it does not open under this account key)."""
        stored = self.meta_get(f"secret:{name}")
        if stored is None:
            return None
        try:
            return self._sealer.open(base64.b64decode(stored), f"meta.secret:{name}")
        except (SealError, ValueError):
            return None

    def find_secret(self, names: list[str]) -> str | None:
        """The first secret kept under one of ``names`` (see ``secret_owners.lookup_names``), or None."""
        for name in names:
            value = self.get_secret(name)
            if value is not None:
                return value
        return None

    def secret_names(self, prefix: str) -> list[str]:
        """The names of the secrets kept under names that start with ``prefix``."""
        low, high = f"secret:{prefix}", f"secret:{prefix}\U0010ffff"
        rows = self._conn.execute("SELECT k FROM meta WHERE k >= ? AND k < ? ORDER BY k", (low, high))
        return [str(key)[len("secret:") :] for (key,) in rows]

    def delete_secrets(self, prefix: str) -> None:
        """Delete every secret whose name starts with ``prefix`` (an owner's: ``secret_owners.owned(owner, "")``)."""
        self._conn.execute(
            "DELETE FROM meta WHERE k >= ? AND k < ?", (f"secret:{prefix}", f"secret:{prefix}\U0010ffff")
        )

    def copy_secrets(self, source_owner: str, target_owner: str) -> None:
        """Give ``target_owner`` a copy of every secret of ``source_owner`` (a schedule's, for a job it creates)."""
        source = owned(source_owner, "")
        with self.transaction():
            for name in self.secret_names(source):
                value = self.get_secret(name)
                if value is not None:
                    self.put_secret(owned(target_owner, name[len(source) :]), value)
