"""The top-N task inside a real node container: input from Azurite by read SAS, output by container SAS."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from batchbox.backends.azure import BlobStorage
from batchbox.core.storage import ContainerPermission, UploadItem

TASKS_DIR = Path(__file__).resolve().parents[1] / "batchbox" / "node" / "tasks"

pytestmark = pytest.mark.docker


def test_topn_runs_in_a_node_container_against_azurite(
    docker_client: docker.DockerClient,
    node_image: str,
    blob_storage: BlobStorage,
    unique_container: Callable[[], str],
    tmp_path: Path,
) -> None:
    inputs, outputs = unique_container(), unique_container()
    blob_storage.create_container(inputs)
    blob_storage.create_container(outputs)
    text = tmp_path / "story.txt"
    text.write_text("\ufeffThe owl, the owl! The cat; the owl.\nCat cat dog\n", encoding="utf-8")
    blob_storage.upload_files(inputs, [UploadItem(text, "story.txt")])
    read_url = blob_storage.blob_sas_url(inputs, "story.txt", expiry=timedelta(minutes=10))
    write_url = blob_storage.container_sas_url(
        outputs, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(minutes=10)
    )
    script = (
        "set -e; cd /tmp; "
        "python3 -c \"import sys, urllib.request; open('story.txt', 'wb').write("
        'urllib.request.urlopen(sys.argv[1]).read())" "$READ_URL"; '
        'python3 /opt/tasks/topn.py --filepath story.txt --numwords 2 --container-url "$WRITE_URL"'
    )
    logs = docker_client.containers.run(
        node_image,
        ["/bin/sh", "-c", script],
        network_mode="host",
        remove=True,
        labels={"batchbox.test": "1"},
        volumes={str(TASKS_DIR): {"bind": "/opt/tasks", "mode": "ro"}},
        environment={
            "READ_URL": read_url,
            "WRITE_URL": write_url,
            "AZ_BATCH_NODE_ID": "node-1",
            "AZ_BATCH_TASK_ID": "task-1",
            "AZ_BATCH_JOB_ID": "job-1",
            "AZ_BATCH_POOL_ID": "pool-1",
        },
        user="1000:1000",
        stderr=True,
    )
    assert b"story_OUTPUT.txt" in logs
    result = blob_storage.read_blob(outputs, "story_OUTPUT.txt").decode("utf-8")
    assert result == (
        "Word\tCount\n" + "-" * 30 + "\n"
        "owl:\t3\nThe:\t2\n" + "-" * 30 + "\n"
        "Node: node-1\nTask: task-1\nJob:  job-1\nPool: pool-1\n"
    )
