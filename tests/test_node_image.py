"""The node image: recipe and tag (no engine needed), and the built image on the real Docker engine."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from batchbox.backends.local.node_image import (
    NODE_IMAGE_LABEL,
    NODE_IMAGE_REPO,
    RECIPE_DIR,
    RECIPE_LABEL,
    ensure_node_image,
    node_image_tag,
    recipe_digest,
)
from batchbox.emulator.nodes.docker_engine import connect_docker

TEST_LABELS = {"batchbox.test": "1"}


def test_tag_is_repo_and_twelve_hex_digits_of_the_recipe() -> None:
    digest = recipe_digest()
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert node_image_tag() == f"{NODE_IMAGE_REPO}:{digest}"
    assert node_image_tag("other") == f"other:{digest}"


def test_tag_command_prints_the_tag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batchbox.backends.local.node_image", "tag"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == node_image_tag()


def test_both_recipes_share_the_user_setup_and_label() -> None:
    dockerfile = (RECIPE_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.12-slim$", dockerfile, re.MULTILINE)
    assert "setup-node.sh" in dockerfile
    assert f'LABEL {NODE_IMAGE_LABEL}="1"' in dockerfile
    setup = (RECIPE_DIR / "setup-node.sh").read_text()
    assert "NODE_UID=1000" in setup and "NODE_GID=1000" in setup
    packages = (RECIPE_DIR / "packages.txt").read_text().split()
    assert "python3" in packages and "ca-certificates" in packages


def _run(client: docker.DockerClient, image: str, command: list[str], user: str = "") -> tuple[int, str]:
    """Run ``command`` in a fresh host-network container, return (exit code, output); always remove it."""
    container = client.containers.create(
        image, command, network_mode="host", labels=TEST_LABELS, user=user, detach=True
    )
    try:
        container.start()
        status: int = container.wait(timeout=120)["StatusCode"]
        output: str = container.logs(stdout=True, stderr=True).decode()
        return status, output
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    docker_client = connect_docker()
    yield docker_client
    docker_client.close()


@pytest.fixture(scope="module")
def node_tag(client: docker.DockerClient) -> str:
    return ensure_node_image(client)


@pytest.mark.docker
def test_ensure_returns_an_existing_labelled_tag(client: docker.DockerClient, node_tag: str) -> None:
    assert node_tag == node_image_tag()
    image = client.images.get(node_tag)
    assert image.labels[NODE_IMAGE_LABEL] == "1"
    assert image.labels[RECIPE_LABEL] == recipe_digest()
    assert client.images.get(f"{NODE_IMAGE_REPO}:latest").id == image.id


@pytest.mark.docker
def test_image_has_python_39_or_newer(client: docker.DockerClient, node_tag: str) -> None:
    status, output = _run(client, node_tag, ["python3", "-c", "import sys; print(*sys.version_info[:2])"])
    assert status == 0, output
    major, minor = (int(part) for part in output.split())
    assert (major, minor) >= (3, 9)


@pytest.mark.docker
def test_image_has_batchuser_1000(client: docker.DockerClient, node_tag: str) -> None:
    status, output = _run(client, node_tag, ["id", "batchuser"])
    assert status == 0, output
    assert output.startswith("uid=1000(batchuser) gid=1000(batchuser)")
    status, output = _run(client, node_tag, ["stat", "-c", "%u:%g", "/home/batchuser"])
    assert (status, output.strip()) == (0, "1000:1000")


@pytest.mark.docker
def test_batchuser_can_use_the_stdlib_the_agent_needs(client: docker.DockerClient, node_tag: str) -> None:
    status, output = _run(
        client,
        node_tag,
        ["python3", "-c", "import http.client, json, ssl, urllib.request; print('ok')"],
        user="1000:1000",
    )
    assert (status, output.strip()) == (0, "ok")


@pytest.mark.docker
def test_image_has_shells_and_ca_certificates(client: docker.DockerClient, node_tag: str) -> None:
    status, output = _run(
        client, node_tag, ["/bin/sh", "-c", "test -x /bin/bash && test -s /etc/ssl/certs/ca-certificates.crt"]
    )
    assert status == 0, output


@pytest.mark.docker
def test_second_ensure_is_a_no_op(client: docker.DockerClient, node_tag: str) -> None:
    before = client.images.get(node_tag)
    assert ensure_node_image(client) == node_tag
    after = client.images.get(node_tag)
    assert after.id == before.id
    assert after.attrs["Created"] == before.attrs["Created"]


@pytest.mark.docker
@pytest.mark.slow
def test_forced_build_into_a_test_repository(client: docker.DockerClient) -> None:
    repository = "batchbox-node-test"
    tag = f"{repository}:{recipe_digest()}"
    try:
        assert ensure_node_image(client, force=True, repository=repository, labels=TEST_LABELS) == tag
        image = client.images.get(tag)
        assert image.labels["batchbox.test"] == "1"
        assert image.labels[NODE_IMAGE_LABEL] == "1"
        assert client.images.get(f"{repository}:latest").id == image.id
        status, output = _run(client, tag, ["id", "-u", "batchuser"])
        assert (status, output.strip()) == (0, "1000")
    finally:
        for name in (f"{repository}:latest", tag):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(name)
