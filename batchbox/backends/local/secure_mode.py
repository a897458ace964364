"""``batchbox local up --tls``: the local stack over HTTPS, with Microsoft Entra ID tokens checked on both services.

Under the stack's home it makes, once:

- ``tls/``: the local CA and the server certificate (:mod:`batchbox.backends.local.tls`);
- ``entra/``: the local token issuer (:mod:`batchbox.backends.local.entra`).

Azurite then serves HTTPS with ``--cert/--key`` and accepts bearer tokens (``--oauth basic``); the emulator serves
HTTPS (``--tls-cert/--tls-key``), verifies tokens of the local issuer (``--entra-issuer``), mounts the CA into its
nodes (``--ca-file``) and, with ``--disable-shared-key``, refuses SharedKey as a Batch account that allows only
Entra ID does. What mode a running stack was started in is recorded next to its PID, so a second ``up`` asking for
another mode fails in one line instead of handing out endpoints that do not match.

Azurite 3.37's ``--oauth basic`` checks a token's lifetime (``nbf``/``exp``, no clock skew), its issuer (one of
Entra's ``https://sts.windows.net/...`` prefixes) and its audience (``https://storage.azure.com``, or the account's
blob URL); it does NOT verify the signature. A user delegation key is derived from the token's ``oid`` and ``tid``
with a constant of Azurite's, and user delegation SAS are verified with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchbox.backends.local.entra import LocalIssuer
from batchbox.backends.local.tls import TlsFiles, ensure_tls_files
from batchbox.core.errors import BackendUnavailableError, ConfigurationError
from batchbox.core.settings import env_name

__all__ = ["ENTRA_DIR_NAME", "TLS_DIR_NAME", "SecureMode", "StackMode", "choose_mode", "recorded_mode"]

TLS_DIR_NAME = "tls"
ENTRA_DIR_NAME = "entra"
_TLS_FIELD = "tls"
_SHARED_KEY_FIELD = "shared_key"


@dataclass(frozen=True)
class StackMode:
    """How a local stack's services authenticate and serve.

    Attributes:
        tls: HTTPS on both services, Entra ID tokens accepted (verified by the emulator).
        shared_key: the emulator accepts SharedKey (False only with ``tls``); None, in a mode asked for: either
            (a stack started for it accepts SharedKey).
    """

    tls: bool = False
    shared_key: bool | None = None

    def __post_init__(self) -> None:
        if self.shared_key is False and not self.tls:
            raise ValueError("SharedKey can be disabled only with TLS (Entra ID tokens need HTTPS)")

    @property
    def shared_key_enabled(self) -> bool:
        return self.shared_key is not False

    def satisfied_by(self, running: StackMode) -> bool:
        """True when a stack running in ``running`` mode is what this mode asks for."""
        return self.tls == running.tls and self.shared_key in (None, running.shared_key_enabled)

    def record(self) -> dict[str, bool]:
        """The fields written next to the emulator's PID."""
        return {_TLS_FIELD: self.tls, _SHARED_KEY_FIELD: self.shared_key_enabled}

    def describe(self) -> str:
        if not self.tls:
            return "plain HTTP, SharedKey"
        if self.shared_key is None:
            return "TLS"
        return "TLS, Entra ID tokens" + (" and SharedKey" if self.shared_key else " only (SharedKey disabled)")


def recorded_mode(fields: Mapping[str, Any]) -> StackMode:
    """The mode a running emulator's PID record states (records written before TLS existed: plain HTTP)."""
    tls = fields.get(_TLS_FIELD) is True
    return StackMode(tls=tls, shared_key=fields.get(_SHARED_KEY_FIELD) is not False or not tls)


def choose_mode(
    running: StackMode | None, asked: StackMode | None, *, azurite_tls: bool | None, own_storage: bool
) -> StackMode:
    """The mode ``up`` starts (or keeps) a stack in.

    Args:
        running: the running emulator's mode (None: it does not run).
        asked: the mode asked for (None: the running one, else plain HTTP).
        azurite_tls: whether the Azurite this stack started serves TLS (None: none runs).
        own_storage: the stack runs its own Azurite (no user connection string).

    Raises:
        BackendUnavailableError: the emulator or Azurite runs in another mode.
        ConfigurationError: TLS with the user's own storage.
    """
    if running is not None and asked is not None and not asked.satisfied_by(running):
        raise BackendUnavailableError(
            "local stack",
            f"it runs with {running.describe()}, not {asked.describe()}: `batchbox local down` first, "
            f"then `batchbox local up` with the options you want",
        )
    mode = running or asked or StackMode()
    if mode.tls and not own_storage:
        raise ConfigurationError(
            env_name("storage_connection_string"),
            "cannot be combined with TLS: the stack serves TLS and tokens with its own Azurite",
        )
    if azurite_tls is not None and azurite_tls != mode.tls:
        raise BackendUnavailableError(
            "local stack",
            f"Azurite runs {'with' if azurite_tls else 'without'} TLS, the emulator is to run with "
            f"{mode.describe()}: `batchbox local down` first",
        )
    return mode


@dataclass(frozen=True)
class SecureMode:
    """The files a TLS stack under ``home`` uses, made when missing.

    Attributes:
        tls: the CA bundle, the server certificate and its key.
        issuer: the local Entra ID token issuer.
    """

    tls: TlsFiles
    issuer: LocalIssuer

    @classmethod
    def ensure(cls, home: Path) -> SecureMode:
        """Make (once) and return the TLS files and the issuer of the stack under ``home``.

        Raises:
            OSError: the home cannot be written.
        """
        return cls(ensure_tls_files(home / TLS_DIR_NAME), LocalIssuer.ensure(home / ENTRA_DIR_NAME))

    def azurite_tls(self) -> tuple[Path, Path, Path]:
        """``(certificate, key, CA)`` for :class:`~batchbox.backends.local.azurite.AzuriteProcess`."""
        return self.tls.server_cert, self.tls.server_key, self.tls.ca_bundle

    def emulator_options(self, mode: StackMode) -> list[str]:
        """The ``batchbox emulator`` options of ``mode``."""
        options = [
            "--tls-cert",
            str(self.tls.server_cert),
            "--tls-key",
            str(self.tls.server_key),
            "--ca-file",
            str(self.tls.ca_bundle),
            "--entra-issuer",
            str(self.issuer.openid_configuration),
        ]
        return options if mode.shared_key_enabled else [*options, "--disable-shared-key"]
