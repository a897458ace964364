"""Encryption at rest of the emulator's state: what users submit can carry secrets, the state dir must not show them.

Task command lines, resource-file URLs, output containers and environment settings routinely hold SAS tokens, and
node rows hold each node's secret. The store keeps every resource document and node secret sealed with AES-256-GCM
under a key derived (HKDF-SHA256) from the Batch account key, so the state directory alone reveals nothing: reading it
needs the key the emulator's clients sign with. No key file is written anywhere.

Each sealed value is ``version byte || 12-byte nonce || ciphertext+tag``; the table name is authenticated with it, so
a row copied into another table does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from batchbox.emulator.protocol.auth import decode_account_key

__all__ = ["SealError", "Sealer"]

_FORMAT = b"\x01"
_NONCE_BYTES = 12
_KDF_INFO = b"batchbox emulator state sealing v1"


class SealError(ValueError):
    """A sealed value does not open: another account key sealed it, or it was altered."""


class Sealer:
    """Seals and opens state values with a key derived from one Batch account key.

    Args:
        account_key: the account key (base64, as Batch shows it).
        account_name: mixed into the derivation, so two accounts sharing a key still get different state keys.

    Raises:
        ValueError: the account key is not valid base64.
    """

    def __init__(self, account_key: str, account_name: str = "") -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=account_name.lower().encode("utf-8"),
            info=_KDF_INFO,
        ).derive(decode_account_key(account_key))
        self._aead = AESGCM(derived)

    def seal(self, text: str, context: str) -> bytes:
        """Encrypt ``text``; ``context`` (e.g. the table name) must be given again to open it."""
        nonce = os.urandom(_NONCE_BYTES)
        return _FORMAT + nonce + self._aead.encrypt(nonce, text.encode("utf-8"), context.encode("utf-8"))

    def open(self, sealed: bytes, context: str) -> str:
        """Decrypt what :meth:`seal` produced with the same ``context``.

        Raises:
            SealError: wrong key, wrong context, unknown format or tampered bytes.
        """
        if not isinstance(sealed, bytes) or len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _FORMAT:
            raise SealError("not a sealed batchbox state value")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            plain = self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], context.encode("utf-8"))
        except InvalidTag:
            raise SealError("a sealed state value does not open with this account key") from None
        return plain.decode("utf-8")
