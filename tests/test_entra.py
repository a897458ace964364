"""Microsoft Entra ID end to end, offline: the local stack with TLS, verified tokens, user delegation SAS.

One stack under its own home is started with ``batchbox local up --tls --disable-shared-key`` (HTTPS on both
services, the emulator refusing SharedKey), then the demo workload runs through ``batchbox --debug run ...
--backend local --auth entra``. The tests then check what made that work (tokens, the CA in the nodes, user
delegation SAS), that token failures get Batch's error bodies, that keys are never used, what Azurite's
``--oauth basic`` does and does not check, and finally scan everything the run left for secrets. Tokens are never
part of an assert expression, so a failing test does not print one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import docker
import docker.errors
import httpx
import jwt
import pytest
from azure.batch import BatchClient
from azure.core.credentials import AccessToken, AzureNamedKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob import BlobServiceClient
from cryptography.hazmat.primitives.asymmetric import rsa

from batchbox.backends.local.azurite import find_free_port
from batchbox.backends.local.backend import LocalBackend
from batchbox.backends.local.entra import STORAGE_AUDIENCE, LocalIssuer
from batchbox.backends.local.stack import LocalEndpoints, LocalStack, StackMode
from batchbox.core.errors import BackendUnavailableError
from batchbox.core.workflow import RunOptions, Workflow
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.protocol.auth import SHARED_KEY_DISABLED_DETAIL
from batchbox.node.tasks.topn import count_words
from batchbox.testing import LocalTokenCredential
from tests.test_readme import _block
from tests.test_security import _files_under, _state_dump, scan

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
DATA = sorted((REPO / "examples" / "topn_words" / "data").glob("*.txt"))
API = {"api-version": "2025-06-01"}
BATCH_AUDIENCE = "https://batch.core.windows.net/"


@dataclass
class EntraStack:
    home: Path
    local: LocalStack
    env: dict[str, str]
    endpoints: LocalEndpoints
    run: subprocess.CompletedProcess[str] = field(repr=False)
    output_dir: Path
    issued: list[str] = field(repr=False)
    """Every token a test made itself (the scan looks for them too)."""

    @property
    def ca(self) -> str:
        return self.endpoints.ca_bundle

    @property
    def issuer(self) -> LocalIssuer:
        return LocalIssuer.load(Path(self.endpoints.entra_issuer))

    def token(self, audience: str = BATCH_AUDIENCE, **options: Any) -> str:
        token = self.issuer.issue(audience, **options).token
        self.issued.append(token)
        return token

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "batchbox.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=240,
        )

    def batch_get(self, path: str, authorization: str) -> httpx.Response:
        with httpx.Client(verify=ssl.create_default_context(cafile=self.ca)) as client:
            return client.get(f"{self.endpoints.batch_url}{path}", params=API, headers={"Authorization": authorization})

    def node_containers(self, docker_client: docker.DockerClient) -> list[Any]:
        label = f"batchbox.emulator={self.local.instance_label}"
        return list(docker_client.containers.list(all=True, ignore_removed=True, filters={"label": label}))


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, node_image: str
) -> Iterator[EntraStack]:
    home = tmp_path_factory.mktemp("entra-home")
    ports = (find_free_port(), find_free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHBOX_", "REQUESTS_CA_BUNDLE", "SSL_CERT"))}
    env.update(
        BATCHBOX_HOME=str(home),
        BATCHBOX_AZURITE_PORT=str(ports[0]),
        BATCHBOX_EMULATOR_PORT=str(ports[1]),
        BATCHBOX_NODE_LABELS="batchbox.test=1",
        BATCHBOX_EMULATOR_LOG_LEVEL="debug",
    )
    local = LocalStack(home, azurite_port=ports[0], emulator_port=ports[1])
    output_dir = home.parent / "entra-outputs"
    try:
        up = subprocess.run(
            [sys.executable, "-m", "batchbox.cli.main", "local", "up", "--tls", "--disable-shared-key", "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=240,
        )
        assert up.returncode == 0, up.stderr[-3000:]
        endpoints = LocalEndpoints(**json.loads(up.stdout))
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "batchbox.cli.main",
                "--debug",
                "run",
                "examples/topn_words/workload.py",
                "--backend",
                "local",
                "--auth",
                "entra",
                "--yes",
                "--keep-job",
                "--keep-pool",
                "--output-dir",
                str(output_dir),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=240,
        )
        yield EntraStack(home, local, env, endpoints, run, output_dir, [])
    finally:
        subprocess.run(
            [sys.executable, "-m", "batchbox.cli.main", "local", "down", "--remove-nodes"],
            capture_output=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
        for container in docker_client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"batchbox.emulator={local.instance_label}"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)


# ------------------------------------------------------------------------------------------------ the demo run
def test_the_demo_workload_runs_with_entra_id_over_tls(stack: EntraStack) -> None:
    assert stack.run.returncode == 0, stack.run.stderr[-3000:]
    assert f"job topn-words-job: {len(DATA)} succeeded, 0 failed of {len(DATA)}" in stack.run.stdout
    assert "Entra ID tokens" in stack.run.stderr  # the backend's one-line description
    assert stack.endpoints.batch_url.startswith("https://") and stack.endpoints.storage_account_url.startswith(
        "https://"
    )
    for source in DATA:
        report = (stack.output_dir / f"{source.stem}_OUTPUT.txt").read_text(encoding="utf-8")
        top = count_words(source).counts.most_common(1)[0]
        assert f"{top[0]}:\t{top[1]}" in report, report


def test_nodes_got_user_delegation_sas_and_trust_the_local_ca(
    stack: EntraStack, docker_client: docker.DockerClient
) -> None:
    credential = LocalTokenCredential(stack.endpoints.entra_issuer)
    with BatchClient(stack.endpoints.batch_url, credential, connection_verify=stack.ca) as client:
        tasks = list(client.list_tasks("topn-words-job"))
        start_task = client.get_pool("topn-words-pool").start_task
    urls = [file.http_url for task in tasks for file in task.resource_files or []]
    urls += [file.http_url for file in start_task.resource_files or []]
    urls += [part.strip('"') for task in tasks for part in task.command_line.split() if "sig=" in part]
    assert len(urls) == 2 * len(DATA) + 1
    for url in urls:
        query = parse_qs(urlsplit(url).query)
        assert urlsplit(url).scheme == "https" and query["spr"] == ["https"], url.split("?")[0]
        # A user delegation SAS names the key's object and tenant: the issuer's identity.
        assert query["skoid"] == [stack.issuer.object_id] and query["sktid"] == [stack.issuer.tenant_id]
    containers = stack.node_containers(docker_client)
    assert containers
    for container in containers:
        mounts = {mount["Destination"]: mount for mount in container.attrs["Mounts"]}
        ca_mount = mounts["/opt/batchbox/tls/ca.pem"]
        assert ca_mount["RW"] is False and ca_mount["Source"] == stack.ca
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert env["BATCHBOX_AGENT_URL"].startswith("https://127.0.0.1:")
        assert env["BATCHBOX_CA_FILE"] == "/opt/batchbox/tls/ca.pem"
    agent_logs = "".join(p.read_text() for p in (stack.home / "emulator" / "nodes").glob("*/agent.log"))
    assert "the local CA is trusted by this node" in agent_logs


# ----------------------------------------------------------------------------------- refusals with Batch's codes
def _refusal_of(status: int, body: dict[str, Any]) -> str:
    """The ``AuthenticationErrorDetail`` of Batch's 403 ``AuthenticationFailed`` body (asserting its shape)."""
    assert status == 403, body
    assert body["code"] == "AuthenticationFailed" and body["message"]["lang"] == "en-US"
    details = {value["key"]: value["value"] for value in body["values"]}
    return str(details["AuthenticationErrorDetail"])


def _refusal(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    return _refusal_of(response.status_code, response.json())


def _signed_by_another_key(token: str) -> str:
    """The same header (``kid`` included) and claims, signed by a key the issuer never had."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": header["kid"]})


def test_token_failures_get_batch_error_bodies(stack: EntraStack) -> None:
    now = time.time()
    storage_token = stack.token(STORAGE_AUDIENCE)
    detail = _refusal(stack.batch_get("/pools", f"Bearer {storage_token}"))
    assert "wrong audience or resource 'https://storage.azure.com'" in detail and BATCH_AUDIENCE in detail

    expired = stack.token(now=now - 7200, lifetime=3600)
    detail = _refusal(stack.batch_get("/pools", f"Bearer {expired}"))
    assert "The access token expiry UTC time" in detail

    forged = _signed_by_another_key(stack.token())
    stack.issued.append(forged)
    detail = _refusal(stack.batch_get("/pools", f"Bearer {forged}"))
    assert detail == "The access token signature is invalid."

    other_issuer = LocalIssuer.ensure(stack.home.parent / f"other-issuer-{uuid.uuid4().hex[:6]}")
    foreign = other_issuer.issue(BATCH_AUDIENCE).token
    stack.issued.append(foreign)
    detail = _refusal(stack.batch_get("/pools", f"Bearer {foreign}"))
    assert "not signed by a key of the trusted issuer" in detail

    not_yet = stack.token(now=now, not_before=now + 3600)
    detail = _refusal(stack.batch_get("/pools", f"Bearer {not_yet}"))
    assert "not valid yet" in detail

    # A good token passes: the checks above are what failed.
    good = stack.batch_get("/pools", f"Bearer {stack.token()}")
    assert good.status_code == 200


class _FixedToken:
    """A TokenCredential that always answers one token (to hand a bad token to the real SDK)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def test_the_sdk_sees_the_refusals_as_batch_errors(stack: EntraStack) -> None:
    for token in (stack.token(STORAGE_AUDIENCE), stack.token(now=time.time() - 7200, lifetime=3600)):
        with (
            BatchClient(stack.endpoints.batch_url, _FixedToken(token), connection_verify=stack.ca) as client,
            pytest.raises((HttpResponseError, ClientAuthenticationError)) as raised,
        ):
            client.get_pool("topn-words-pool")
        assert raised.value.status_code == 403
        assert raised.value.error is not None and raised.value.error.code == "AuthenticationFailed"


def test_shared_key_is_refused_as_on_an_entra_only_account(stack: EntraStack) -> None:
    credential = AzureNamedKeyCredential(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY)
    with (
        BatchClient(stack.endpoints.batch_url, credential, connection_verify=stack.ca) as client,
        pytest.raises((HttpResponseError, ClientAuthenticationError)) as raised,
    ):
        client.get_pool("topn-words-pool")
    assert raised.value.response is not None
    assert _refusal_of(raised.value.response.status_code, raised.value.response.json()) == SHARED_KEY_DISABLED_DETAIL
    # The CLI without --auth entra uses the development keys: one line, non-zero exit.
    refused = stack.cli("status")
    assert refused.returncode != 0 and "AuthenticationFailed" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_an_entra_workflow_never_uses_a_key(stack: EntraStack) -> None:
    """The same workflow through the local backend with every key in its endpoints wrong: it still succeeds."""
    wrong = base64.b64encode(uuid.uuid4().bytes * 4).decode()
    endpoints = replace(
        stack.endpoints,
        batch_key=wrong,
        storage_connection_string=stack.endpoints.storage_connection_string.replace(
            stack.endpoints.storage_connection_string.split("AccountKey=")[1].split(";")[0], wrong
        ),
    )
    sys.path.insert(0, str(REPO / "examples" / "topn_words"))
    try:
        from workload import TopNWords
    finally:
        sys.path.remove(str(REPO / "examples" / "topn_words"))

    class SecondRun(TopNWords):
        job_id = "topn-words-entra-only"
        pool_id = "topn-words-pool"

    with LocalBackend(endpoints, entra=True) as backend:
        result = Workflow(
            backend, SecondRun(), RunOptions(poll_interval=0.1, keep_pool=True, output_dir=stack.home.parent / "o2")
        ).run()
    assert result.ok and result.counts.succeeded == len(DATA)
    # ... while the same wrong keys are refused by both services.
    with (
        BlobServiceClient.from_connection_string(
            endpoints.storage_connection_string, connection_verify=stack.ca, retry_total=0
        ) as blobs,
        pytest.raises(HttpResponseError) as refused,
    ):
        next(iter(blobs.list_containers()))
    # Azurite passes a SharedKey it cannot verify on to its token check, which answers 400 InvalidAuthenticationInfo.
    assert refused.value.status_code in (400, 403)


# -------------------------------------------------------------------------------- clients, the token command
def test_sdk_clients_with_local_token_credential_and_the_ca_variables(
    stack: EntraStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential = LocalTokenCredential(stack.endpoints.entra_issuer)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", stack.ca)  # what `local up` tells users to export
    with BatchClient(stack.endpoints.batch_url, credential) as client:
        assert "topn-words-pool" in {pool.id for pool in client.list_pools()}
    name = f"entra-{uuid.uuid4().hex[:8]}"
    with BlobServiceClient(stack.endpoints.storage_account_url, credential=credential) as blobs:
        blobs.create_container(name)
        assert name in {c.name for c in blobs.list_containers()}
        blobs.delete_container(name)
    info = credential.get_token_info("https://storage.azure.com/.default")
    stack.issued.append(info.token)
    assert info.token_type == "Bearer" and info.refresh_on is not None and info.refresh_on < info.expires_on
    audience = jwt.decode(info.token, options={"verify_signature": False})["aud"]
    assert audience == STORAGE_AUDIENCE


def test_local_token_prints_a_token_for_scripts(stack: EntraStack) -> None:
    batch = stack.cli("local", "token")
    assert batch.returncode == 0, batch.stderr
    token = batch.stdout.strip()
    stack.issued.append(token)
    answer = stack.batch_get("/pools", f"Bearer {token}")
    assert answer.status_code == 200
    storage = stack.cli("local", "token", "--audience", "https://storage.azure.com")
    stack.issued.append(storage.stdout.strip())
    request = urllib.request.Request(
        f"{stack.endpoints.storage_account_url}?comp=list",
        headers={"Authorization": f"Bearer {storage.stdout.strip()}", "x-ms-version": "2025-11-05"},
    )
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=stack.ca), timeout=10) as listed:
        assert listed.status == 200 and b"<EnumerationResults" in listed.read()
    missing = subprocess.run(
        [sys.executable, "-m", "batchbox.cli.main", "local", "token", "--home", str(stack.home.parent / "none")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert missing.returncode != 0 and "local up --tls" in missing.stderr


def test_what_azurite_checks_of_a_token(stack: EntraStack) -> None:
    """Azurite's --oauth basic, as the README says: lifetime, issuer and audience; NOT the signature."""

    def list_containers(token: str) -> int:
        request = urllib.request.Request(
            f"{stack.endpoints.storage_account_url}?comp=list",
            headers={"Authorization": f"Bearer {token}", "x-ms-version": "2025-11-05"},
        )
        context = ssl.create_default_context(cafile=stack.ca)
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    forged = _signed_by_another_key(stack.token(STORAGE_AUDIENCE))
    stack.issued.append(forged)
    statuses = {
        "good": list_containers(stack.token(STORAGE_AUDIENCE)),
        "Batch audience": list_containers(stack.token(BATCH_AUDIENCE)),
        "expired": list_containers(stack.token(STORAGE_AUDIENCE, now=time.time() - 7200, lifetime=3600)),
        "another key": list_containers(forged),
    }
    # 403 AuthenticationFailed for the audience and the lifetime; the signature is not checked by Azurite.
    assert statuses == {"good": 200, "Batch audience": 403, "expired": 403, "another key": 200}


def test_the_state_dir_holds_the_keys_private_and_the_mode(stack: EntraStack) -> None:
    for key in (stack.home / "tls" / "server-key.pem", stack.home / "entra" / "signing-key.pem"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert not list((stack.home / "tls").glob("*ca*key*")), "the CA's private key is never written"
    record = json.loads((stack.home / "emulator" / "process.json").read_text())
    assert record["tls"] is True and record["shared_key"] is False
    # `local up` without --disable-shared-key takes the running mode; asking for SharedKey on fails in one line.
    again = stack.cli("local", "up", "--tls", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["batch_url"] == stack.endpoints.batch_url
    with pytest.raises(BackendUnavailableError, match="SharedKey disabled"):
        replace_mode = LocalStack(
            stack.home,
            azurite_port=stack.local.azurite_port,
            emulator_port=stack.local.emulator_port,
            mode=StackMode(tls=True, shared_key=True),
        )
        replace_mode.up()


def test_the_readme_python_block_runs_on_the_stack(stack: EntraStack) -> None:
    checks = (
        "\nprint(sorted(pool.id for pool in batch.list_pools()))\nprint(sum(1 for _ in blobs.list_containers()) >= 0)"
    )
    env = {**stack.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{stack.env.get('PATH', '')}"}
    ran = subprocess.run(
        [sys.executable, "-c", _block("Entra ID", "python", "import json") + checks],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.splitlines() == ["['topn-words-pool']", "True"]


# ---------------------------------------------------- the whole scan, last: it sees the logs the tests above caused
def test_no_token_key_sas_signature_or_private_key_anywhere(
    stack: EntraStack, docker_client: docker.DockerClient
) -> None:
    assert " DEBUG " in stack.run.stderr, "debug logging was on (SDK request logs included)"
    private_keys = {
        "the server's private key": stack.home / "tls" / "server-key.pem",
        "the issuer's signing key": stack.home / "entra" / "signing-key.pem",
    }
    secrets: dict[str, str] = {name: path.read_text() for name, path in private_keys.items()}
    for container in stack.node_containers(docker_client):
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        secrets[f"the secret of node {env['BATCHBOX_NODE_ID']}"] = env["BATCHBOX_NODE_SECRET"]
    accepted = stack.batch_get("/pools", f"Bearer {stack.token()}")
    refused = stack.batch_get("/pools", f"Bearer {stack.token(STORAGE_AUDIENCE)}")
    assert (accepted.status_code, refused.status_code) == (200, 403)
    for index, token in enumerate(stack.issued):
        secrets[f"token {index} made by a test"] = token

    texts = {"batchbox run stdout": stack.run.stdout, "batchbox run stderr": stack.run.stderr}
    status = stack.cli("--debug", "status", "--auth", "entra")
    assert status.returncode == 0, status.stderr[-2000:]
    texts["batchbox status --auth entra"] = status.stdout + status.stderr
    skipped = set(private_keys.values())
    texts |= _files_under(stack.home, lambda p: p in skipped or (stack.local.azurite_dir / "data") in p.parents)
    texts |= _files_under(stack.output_dir, lambda p: False)
    texts |= _state_dump(stack.home / "emulator" / "state.db")
    for container in stack.node_containers(docker_client):
        texts[f"docker logs {container.name}"] = container.logs().decode("utf-8", "replace")
    assert any("agent.log" in where for where in texts) and any(where.endswith("emulator.log") for where in texts)
    assert " DEBUG " in texts[str(stack.local.emulator_log)], "the emulator logged at debug level"
    findings = [f for where, text in texts.items() for f in scan(where, text, secrets)]
    print(f"scanned {len(texts)} sources, {sum(len(t) for t in texts.values())} characters, for {len(secrets)} secrets")
    assert findings == [], "\n".join(f"{f.what} in {f.where}: ...{f.context}" for f in findings[:20])
    # The scanner does find each kind of secret where it is meant to be.
    control = {f.what for name, path in private_keys.items() for f in scan(name, path.read_text(), {})}
    control |= {f.what for f in scan("a token", stack.issued[0], {})}
    assert control == {"a private key", "a bearer token"}, control
