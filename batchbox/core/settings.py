"""Settings: which backend, and how to reach Azure, from environment variables and an optional batchbox.toml.

Environment variables win over the file. Names (all optional until the backend that needs them is chosen):

=====================================  ==========================================================================
``BATCHBOX_BACKEND``                   ``local`` (default), ``azure``, ``memory`` or another registered backend
``BATCHBOX_BATCH_URL``                 Batch account URL, e.g. ``https://myacct.westeurope.batch.azure.com``
``BATCHBOX_BATCH_ACCOUNT``             Batch account name (needed with a key)
``BATCHBOX_BATCH_KEY``                 Batch account key; without it, Azure AD (DefaultAzureCredential) is used
``BATCHBOX_AUTH``                      ``key`` or ``entra``: how to authenticate (see below); unset: keys where
                                       they are set, Microsoft Entra ID (DefaultAzureCredential) elsewhere
``BATCHBOX_STORAGE_CONNECTION_STRING`` storage connection string, or instead:
``BATCHBOX_STORAGE_ACCOUNT_URL``       ``https://myacct.blob.core.windows.net`` (key or Azure AD)
``BATCHBOX_STORAGE_KEY``               storage account key (optional with an account URL)
``BATCHBOX_HOME``                      where the local backend keeps its state (default ``~/.local/share/batchbox``)
``BATCHBOX_CONFIG``                    path of the settings file (default ``./batchbox.toml`` when it exists)
=====================================  ==========================================================================

The file uses the same names in lower case without the prefix, under ``[batchbox]``, e.g. ``batch_url = "..."``.

``auth = "entra"`` means Microsoft Entra ID only, for Batch and for storage: on Azure, ``DefaultAzureCredential``
with ``BATCHBOX_BATCH_URL`` and ``BATCHBOX_STORAGE_ACCOUNT_URL``, and a key or a connection string set beside it is
refused rather than used; on the local backend, the stack runs with TLS and the local token issuer. ``auth = "key"``
means shared keys only (a missing key is an error instead of a switch to Entra ID).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from batchbox.core.errors import ConfigurationError
from batchbox.core.registry import known_backends

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["AUTH_MODES", "ENV_PREFIX", "SETTING_NAMES", "Settings", "load_settings"]

ENV_PREFIX = "BATCHBOX_"
AUTH_MODES = ("key", "entra")
"""Values of the ``auth`` setting."""
SETTING_NAMES = (
    "backend",
    "auth",
    "batch_url",
    "batch_account",
    "batch_key",
    "storage_connection_string",
    "storage_account_url",
    "storage_key",
    "home",
)
_SECRET_NAMES = frozenset({"batch_key", "storage_key", "storage_connection_string"})


@dataclass(frozen=True)
class Settings:
    """Resolved settings. ``repr`` hides secrets."""

    backend: str = "local"
    auth: str | None = None
    batch_url: str | None = None
    batch_account: str | None = None
    batch_key: str | None = field(default=None, repr=False)
    storage_connection_string: str | None = field(default=None, repr=False)
    storage_account_url: str | None = None
    storage_key: str | None = field(default=None, repr=False)
    home: Path | None = None

    def require(self, name: str) -> str:
        """The value of a setting, or a ConfigurationError naming its environment variable."""
        value = getattr(self, name)
        if value in (None, ""):
            raise ConfigurationError(env_name(name), f"not set; the {self.backend} backend needs it")
        return str(value)

    def with_backend(self, backend: str | None) -> Settings:
        """A copy with another backend name (None keeps this one)."""
        return self if backend is None else replace(self, backend=backend)

    @property
    def entra(self) -> bool:
        """True when Microsoft Entra ID alone is to be used (``auth = "entra"``)."""
        return self.auth == "entra"

    def describe(self) -> dict[str, str]:
        """Settings for display: secrets shown only as set / not set."""
        shown: dict[str, str] = {}
        for name in SETTING_NAMES:
            value = getattr(self, name)
            if name in _SECRET_NAMES:
                shown[env_name(name)] = "(set)" if value else "(not set)"
            elif value is not None:
                shown[env_name(name)] = str(value)
        return shown


def env_name(name: str) -> str:
    """The environment variable of a setting."""
    return ENV_PREFIX + name.upper()


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    backend: str | None = None,
    auth: str | None = None,
) -> Settings:
    """Resolve settings from ``environ`` (default: the process environment) over an optional TOML file.

    Args:
        environ: the environment (default ``os.environ``).
        config_file: the settings file (default ``$BATCHBOX_CONFIG``, else ``./batchbox.toml`` when it exists).
        backend: overrides the backend setting (``--backend``).
        auth: overrides the auth setting (``--auth``).

    Raises:
        ConfigurationError: the file cannot be read or has unknown keys; an unknown backend or auth mode.
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    path = config_file or (Path(env[env_name("config")]) if env.get(env_name("config")) else None)
    if path is None and Path("batchbox.toml").is_file():
        path = Path("batchbox.toml")
    if path is not None:
        values.update(_read_file(path))
    for name in SETTING_NAMES:
        value = env.get(env_name(name))
        if value:
            values[name] = value
    if backend:
        values["backend"] = backend
    if auth:
        values["auth"] = auth
    if values.get("auth") not in (None, *AUTH_MODES):
        raise ConfigurationError(env_name("auth"), f"must be one of {', '.join(AUTH_MODES)}, not {values['auth']!r}")
    chosen = values.get("backend", "local")
    if chosen not in known_backends() and "." not in chosen:  # a dotted name may be registered by a plugin later
        choices = ", ".join(repr(name) for name in sorted(known_backends()))
        raise ConfigurationError(env_name("backend"), f"unknown backend {chosen!r}; use one of {choices}")
    home = values.pop("home", None)
    return Settings(**values, home=Path(home).expanduser() if home else None)


def _read_file(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(env_name("config"), f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(env_name("config"), f"{path} is not valid TOML: {exc}") from exc
    section = data.get("batchbox", data)
    unknown = sorted(set(section) - set(SETTING_NAMES))
    if unknown:
        raise ConfigurationError(env_name("config"), f"{path}: unknown setting(s) {', '.join(unknown)}")
    return {key: str(value) for key, value in section.items()}
