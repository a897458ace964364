"""TLS inside a node: the local CA an emulator serving HTTPS mounts into the node (stdlib only, Python >= 3.9).

``BATCHBOX_CA_FILE`` names the CA certificate (mounted read-only). The agent verifies the emulator and blob storage
with :func:`client_context` (the system's CAs plus that one), and :func:`trust_in_node` adds it to the node's system
CA bundle once, so the tasks' own HTTPS clients (Python's ``urllib``, ``curl``) trust the local stack as an Azure
node's trust Azure's certificates. Without the variable nothing changes.
"""

from __future__ import annotations

import os
import ssl
import threading

__all__ = ["CA_FILE_ENV", "ca_file", "client_context", "trust_in_node"]

CA_FILE_ENV = "BATCHBOX_CA_FILE"
_MARKER = "# batchbox local CA\n"
_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def ca_file() -> str | None:
    """The mounted CA certificate, or None when the emulator does not serve TLS."""
    return os.environ.get(CA_FILE_ENV) or None


def client_context() -> ssl.SSLContext:
    """A verifying client context: the system's CAs, plus the local CA when one is mounted (made once)."""
    global _context
    with _lock:
        if _context is None:
            context = ssl.create_default_context()
            extra = ca_file()
            if extra:
                context.load_verify_locations(cafile=extra)
            _context = context
        return _context


def trust_in_node() -> str | None:
    """Append the local CA to the node's system bundle unless it is there; return the bundle's path (None: no CA).

    Raises:
        OSError: the CA or the bundle cannot be read or written.
    """
    extra = ca_file()
    if not extra:
        return None
    bundle = os.path.realpath(ssl.get_default_verify_paths().openssl_cafile)
    with open(extra, encoding="ascii") as handle:
        pem = handle.read().strip() + "\n"
    try:
        with open(bundle, encoding="ascii", errors="replace") as handle:
            present = pem in handle.read()
    except FileNotFoundError:
        present = False
    if not present:
        os.makedirs(os.path.dirname(bundle), exist_ok=True)
        with open(bundle, "a", encoding="ascii") as handle:
            handle.write("\n" + _MARKER + pem)
    return bundle
