"""Testing your own Batch code with batchbox: what the pytest plugin hands your tests, usable without pytest too.

- :class:`BatchTarget`: where a test session's Batch and blob calls go (the local stack, or live Azure) and
  clients for it; the ``batchbox_local`` fixture yields one.
- :class:`UniqueNames`: unique pool, job and container names for one test, and the cleanup of whatever was created
  under them; the ``batchbox_names`` fixture yields one.
- :class:`SharedLocalStack`: one local stack shared by every pytest process of a run (pytest-xdist workers),
  stopped by the last of them when a test session started it.
- :class:`LocalTokenCredential`: an azure-core ``TokenCredential`` whose tokens come from the local Microsoft Entra
  ID issuer of a stack started with ``batchbox local up --tls``, so ``BatchClient(url, credential)`` and
  ``BlobServiceClient(url, credential)`` work as against Azure with Entra ID.

The plugin itself (``batchbox.testing.plugin``) is registered under the ``pytest11`` entry point.
"""

from batchbox.backends.local.entra import LocalTokenCredential
from batchbox.testing.isolation import UniqueNames
from batchbox.testing.shared_stack import SharedLocalStack
from batchbox.testing.target import BatchTarget, azure_target, local_target

__all__ = ["BatchTarget", "LocalTokenCredential", "SharedLocalStack", "UniqueNames", "azure_target", "local_target"]
