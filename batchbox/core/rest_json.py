"""The Batch REST JSON of the file descriptions of a task: what a task body carries to the service and what a
node agent reads. Plain dicts of strings, so building them costs nothing and needs no SDK."""

from __future__ import annotations

from typing import Any

from batchbox.core.models import OutputFile, ResourceFile

__all__ = ["output_file_json", "resource_file_json"]


def resource_file_json(item: ResourceFile) -> dict[str, str]:
    """A ``ResourceFile`` object: ``httpUrl`` or ``storageContainerUrl``, and what is set of the rest."""
    fields = (
        ("httpUrl", item.http_url),
        ("storageContainerUrl", item.storage_container_url),
        ("blobPrefix", item.blob_prefix),
        ("filePath", item.file_path),
        ("fileMode", item.file_mode),
    )
    return {name: value for name, value in fields if value is not None}


def output_file_json(item: OutputFile) -> dict[str, Any]:
    """An ``OutputFile`` object: the pattern, the destination container (and path) and the upload condition."""
    container: dict[str, str] = {"containerUrl": item.container_url}
    if item.path is not None:
        container["path"] = item.path
    return {
        "filePattern": item.file_pattern,
        "destination": {"container": container},
        "uploadOptions": {"uploadCondition": item.upload_condition.value},
    }
