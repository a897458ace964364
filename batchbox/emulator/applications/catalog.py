"""The account's application packages, kept in its linked storage as Batch keeps them.

One blob container, ``batchbox-applications``, holds per application (by its id in lower case):

* ``<app>/application.json``: ``{"id", "displayName", "defaultVersion"}`` (the id as first given);
* ``<app>/versions/<version>.zip``: each package, its version as given (versions match ignoring case).

``batchbox app add/list/remove`` write it; the emulator reads it for ``GET /applications``, for the check of pool
references and for the packages it hands to nodes (a read SAS URL each). Every call blocks on the storage.
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from batchbox.emulator.storage_link import LinkedStorage

__all__ = [
    "CONTAINER",
    "Application",
    "PackageCatalog",
    "PackageError",
    "ResolvedPackage",
    "check_application_id",
    "check_upload",
    "check_version",
]

CONTAINER = "batchbox-applications"
_APP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VERSION = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


class PackageError(ValueError):
    """An application package request that cannot be met (the message is one line)."""


def check_application_id(app_id: str) -> str:
    """An application id: 1-64 letters, digits, ``_`` and ``-`` (Batch's rule).

    Raises:
        PackageError: it does not follow the rule.
    """
    if not _APP_ID.fullmatch(app_id):
        raise PackageError(f"application id {app_id!r}: use 1-64 letters, digits, '_' or '-'")
    return app_id


def check_version(version: str) -> str:
    """A package version: 1-64 letters, digits, ``_``, ``-`` and ``.``, not starting with ``.`` (Batch's rule).

    Raises:
        PackageError: it does not follow the rule.
    """
    if not _VERSION.fullmatch(version):
        raise PackageError(f"version {version!r}: use 1-64 letters, digits, '_', '-' or '.', not starting with '.'")
    return version


def check_upload(app_id: str, version: str, path: Path) -> None:
    """Check an id, a version and a package file before anything is stored.

    Raises:
        PackageError: the first problem found.
    """
    check_application_id(app_id)
    check_version(version)
    if not zipfile.is_zipfile(path):
        raise PackageError(f"{path} is not a .zip file (Batch application packages are zip files)")


@dataclass
class Application:
    """One application: its id, display name, versions and default version."""

    id: str
    display_name: str
    default_version: str | None = None
    versions: list[str] = field(default_factory=list)

    def version(self, wanted: str | None) -> str | None:
        """The stored spelling of ``wanted`` (the default version when None), or None."""
        target = wanted if wanted is not None else self.default_version
        if target is None:
            return None
        return next((v for v in self.versions if v.lower() == target.lower()), None)

    def rest(self) -> dict[str, object]:
        """The REST ``BatchApplication`` document."""
        return {"id": self.id, "displayName": self.display_name, "versions": sorted(self.versions)}


@dataclass(frozen=True)
class ResolvedPackage:
    """A package a node will install: the application and the version, the blob and its ETag."""

    application_id: str
    version: str
    blob: str
    etag: str


class PackageCatalog:
    """Application packages in the linked storage account.

    Args:
        storage: the linked storage account.
    """

    def __init__(self, storage: LinkedStorage) -> None:
        self.storage = storage
        self._container = storage.container(CONTAINER)

    @staticmethod
    def _meta_blob(app_key: str) -> str:
        return f"{app_key}/application.json"

    @staticmethod
    def _package_blob(app_key: str, version: str) -> str:
        return f"{app_key}/versions/{version}.zip"

    def _read_meta(self, app_key: str) -> dict[str, str | None] | None:
        try:
            data = self._container.download_blob(self._meta_blob(app_key)).readall()
        except ResourceNotFoundError:
            return None
        value = json.loads(data)
        return value if isinstance(value, dict) else None

    def _write_meta(self, app_key: str, meta: Mapping[str, str | None]) -> None:
        self._container.upload_blob(self._meta_blob(app_key), json.dumps(meta).encode(), overwrite=True)

    def applications(self) -> list[Application]:
        """Every application with its versions, sorted by id."""
        try:
            names = [blob.name for blob in self._container.list_blobs()]
        except ResourceNotFoundError:
            return []
        apps: dict[str, Application] = {}
        for name in names:
            app_key, _, rest = name.partition("/")
            if rest == "application.json":
                meta = self._read_meta(app_key) or {}
                app = apps.setdefault(app_key, Application(str(meta.get("id") or app_key), ""))
                app.id = str(meta.get("id") or app_key)
                app.display_name = str(meta.get("displayName") or app.id)
                app.default_version = meta.get("defaultVersion")
            elif rest.startswith("versions/") and rest.endswith(".zip"):
                app = apps.setdefault(app_key, Application(app_key, app_key))
                app.versions.append(rest[len("versions/") : -len(".zip")])
        return sorted(apps.values(), key=lambda app: app.id.lower())

    def get(self, app_id: str) -> Application | None:
        """One application (ids match ignoring case), or None."""
        key = app_id.lower()
        return next((app for app in self.applications() if app.id.lower() == key), None)

    def resolve(self, app_id: str, version: str | None) -> ResolvedPackage:
        """The package a reference names (the application's default version when ``version`` is None).

        Raises:
            PackageError: no such application, version, or default version.
        """
        app = self.get(app_id)
        if app is None:
            raise PackageError(f"the application {app_id} does not exist")
        found = app.version(version)
        if found is None:
            if version is None:
                raise PackageError(f"the application {app_id} has no default version")
            raise PackageError(f"the application {app_id} has no version {version}")
        blob = self._package_blob(app.id.lower(), found)
        etag = str(self._container.get_blob_client(blob).get_blob_properties().etag).strip('"')
        return ResolvedPackage(app.id, found, blob, etag)

    def download_url(self, package: ResolvedPackage) -> str:
        """A read SAS URL of the package's zip file."""
        return self.storage.blob_read_url(CONTAINER, package.blob)

    def add(
        self, app_id: str, version: str, path: Path, *, display_name: str | None = None, make_default: bool = False
    ) -> Application:
        """Store a package (a .zip file); the application is created with it. Its first version becomes its default.

        Raises:
            PackageError: a bad id, version or file, or the version exists already.
        """
        check_upload(app_id, version, path)
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        app = self.get(app_id) or Application(app_id, display_name or app_id)
        if app.version(version) is not None:
            raise PackageError(f"{app.id} {version} exists already; remove it first")
        with path.open("rb") as data:
            self._container.upload_blob(self._package_blob(app.id.lower(), version), data)
        default = version if make_default or app.default_version is None else app.default_version
        meta = {"id": app.id, "displayName": display_name or app.display_name, "defaultVersion": default}
        self._write_meta(app.id.lower(), meta)
        app.versions.append(version)
        app.display_name, app.default_version = str(meta["displayName"]), default
        return app

    def remove(self, app_id: str, version: str | None = None) -> list[str]:
        """Remove one version (or, with None, the whole application); return the versions removed.

        Raises:
            PackageError: no such application or version.
        """
        app = self.get(app_id)
        if app is None:
            raise PackageError(f"the application {app_id} does not exist")
        if version is not None and app.version(version) is None:
            raise PackageError(f"the application {app.id} has no version {version}")
        doomed = [v for v in app.versions if version is None or v.lower() == version.lower()]
        for each in doomed:
            self._container.delete_blob(self._package_blob(app.id.lower(), each))
        left = [v for v in app.versions if v not in doomed]
        if not left:
            self._container.delete_blob(self._meta_blob(app.id.lower()))
        elif app.default_version is not None and app.version(app.default_version) in doomed:
            self._write_meta(app.id.lower(), {"id": app.id, "displayName": app.display_name, "defaultVersion": None})
        return doomed
