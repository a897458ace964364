"""The parts of the Entra ID path on their own: TLS files, the local issuer and credential, the token verifier, the
stack's modes, the ``auth`` setting and the Azure backend's Entra-only rule. No Docker, no services."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import ssl
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
from cryptography import x509

from batchbox.backends.azure.backend import AzureBackend
from batchbox.backends.local.entra import BATCH_AUDIENCE, LocalIssuer, LocalTokenCredential, audience_of_scope
from batchbox.backends.local.secure_mode import StackMode, choose_mode, recorded_mode
from batchbox.backends.local.tls import ensure_tls_files, read_tls_files
from batchbox.core.errors import BackendUnavailableError, ConfigurationError
from batchbox.core.settings import load_settings
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.errors import BatchError
from batchbox.emulator.protocol.auth import SHARED_KEY_DISABLED_DETAIL, SharedKeyVerifier
from batchbox.emulator.protocol.tokens import TokenVerifier


# ------------------------------------------------------------------------------------------------------- TLS files
def test_tls_files_are_made_once_with_a_private_key_and_the_loopback_names(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path / "tls")
    assert files.server_key.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == ["ca.pem", "server-key.pem", "server.pem"]
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    # The CA verifies the server certificate (what clients do), and a second call changes nothing.
    context = ssl.create_default_context(cafile=str(files.ca_bundle))
    context.load_cert_chain(files.server_cert, files.server_key)
    before = files.server_cert.read_bytes()
    assert ensure_tls_files(tmp_path / "tls") == files and files.server_cert.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tls"], "no staging directory is left behind"


def test_incomplete_tls_files_are_made_anew(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path / "tls")
    old_ca = files.ca_bundle.read_bytes()
    files.server_key.unlink()
    assert read_tls_files(tmp_path / "tls") is None
    again = ensure_tls_files(tmp_path / "tls")
    assert again.server_key.is_file() and again.ca_bundle.read_bytes() != old_ca


# ----------------------------------------------------------------------------------------- issuer, credential
def test_the_issuer_signs_entra_shaped_tokens_its_key_set_verifies(tmp_path: Path) -> None:
    issuer = LocalIssuer.ensure(tmp_path / "entra")
    assert (issuer.directory / "signing-key.pem").stat().st_mode & 0o777 == 0o600
    metadata = json.loads(issuer.openid_configuration.read_text())
    assert metadata["issuer"] == f"https://sts.windows.net/{issuer.tenant_id}/" == issuer.issuer
    assert metadata["jwks_uri"] == issuer.jwks_path.resolve().as_uri()
    token = issuer.issue(BATCH_AUDIENCE, lifetime=600)
    header = jwt.get_unverified_header(token.token)
    key = jwt.PyJWKSet.from_dict(json.loads(issuer.jwks_path.read_text()))[header["kid"]]
    claims = jwt.decode(token.token, key.key, algorithms=["RS256"], audience=BATCH_AUDIENCE, issuer=issuer.issuer)
    assert claims["oid"] == issuer.object_id and claims["tid"] == issuer.tenant_id
    assert claims["exp"] == token.expires_on == claims["iat"] + 600
    assert LocalIssuer.ensure(tmp_path / "entra") == issuer, "made once"


def test_the_credential_maps_scopes_to_audiences_and_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    assert audience_of_scope("https://batch.core.windows.net//.default") == BATCH_AUDIENCE
    assert audience_of_scope("https://storage.azure.com/.default") == "https://storage.azure.com"
    issuer = LocalIssuer.ensure(tmp_path / "entra")
    credential = LocalTokenCredential(tmp_path / "entra")
    token = credential.get_token("https://storage.azure.com/.default")
    assert jwt.decode(token.token, options={"verify_signature": False})["aud"] == "https://storage.azure.com"
    info = credential.get_token_info(
        "https://batch.core.windows.net//.default", options={"tenant_id": issuer.tenant_id}
    )
    assert info.token_type == "Bearer" and info.expires_on - info.refresh_on == 300
    with pytest.raises(ValueError, match="exactly one scope"):
        credential.get_token("a/.default", "b/.default")
    with pytest.raises(ValueError, match="claims challenge"):
        credential.get_token("https://storage.azure.com/.default", claims='{"access_token": {}}')
    with pytest.raises(ValueError, match="not the local tenant"):
        credential.get_token("https://storage.azure.com/.default", tenant_id="another-tenant")
    with pytest.raises(ConfigurationError, match="local up --tls"):
        LocalTokenCredential(tmp_path / "nothing-here")


# ---------------------------------------------------------------------------------------------- the verifier
@pytest.fixture
def issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer.ensure(tmp_path / "entra")


def _detail(error: BatchError) -> str:
    assert error.status == 403 and error.code == "AuthenticationFailed"
    return str(dict(error.values or {})["AuthenticationErrorDetail"])


def test_the_verifier_checks_signature_issuer_audience_and_lifetime(issuer: LocalIssuer, tmp_path: Path) -> None:
    verifier = TokenVerifier.from_openid_configuration(issuer.openid_configuration)
    good = issuer.issue(BATCH_AUDIENCE).token
    assert verifier.verify(good).object_id == issuer.object_id
    now = time.time()
    cases = {
        "not a JWT": ("not-a-jwt", "not a well-formed"),
        "storage audience": (issuer.issue("https://storage.azure.com").token, "wrong audience"),
        "audience without the slash": (issuer.issue("https://batch.core.windows.net").token, "wrong audience"),
        "expired beyond the skew": (issuer.issue(BATCH_AUDIENCE, now=now - 4000, lifetime=3600).token, "expiry"),
        "not valid yet": (issuer.issue(BATCH_AUDIENCE, now=now, not_before=now + 3600).token, "not valid yet"),
        "another issuer": (LocalIssuer.ensure(tmp_path / "other").issue(BATCH_AUDIENCE).token, "not signed by a key"),
        "no signature": (good.rsplit(".", 1)[0] + ".", "signature is invalid"),
    }
    for name, (token, expected) in cases.items():
        with pytest.raises(BatchError) as refused:
            verifier.verify(token)
        assert expected in _detail(refused.value), name
    # Within the 5 minutes of clock skew Entra ID tolerates, an expired token still passes.
    assert verifier.verify(issuer.issue(BATCH_AUDIENCE, now=now - 3700, lifetime=3600).token)


def test_a_token_claiming_alg_none_or_hs256_is_refused(issuer: LocalIssuer) -> None:
    verifier = TokenVerifier.from_openid_configuration(issuer.openid_configuration)
    good = issuer.issue(BATCH_AUDIENCE).token
    kid = jwt.get_unverified_header(good)["kid"]
    claims = jwt.decode(good, options={"verify_signature": False})
    # The classic confusion: HS256 "signed" with the issuer's public key (which anyone can read) as the secret.
    public_pem = issuer.jwks_path.read_bytes()
    header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
    body = f"{header}.{_b64(json.dumps(claims).encode())}"
    hs256 = f"{body}.{_b64(hmac.new(public_pem, body.encode(), hashlib.sha256).digest())}"
    for token in (jwt.encode(claims, None, algorithm="none", headers={"kid": kid}), hs256):
        with pytest.raises(BatchError) as refused:
            verifier.verify(token)
        assert "not signed by a key of the trusted issuer" in _detail(refused.value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_issuer_metadata_must_name_a_local_key_set(tmp_path: Path) -> None:
    metadata = tmp_path / "openid-configuration.json"
    metadata.write_text(json.dumps({"issuer": "https://sts.windows.net/x/", "jwks_uri": "https://example.invalid/k"}))
    with pytest.raises(ValueError, match="local file"):
        TokenVerifier.from_openid_configuration(metadata)
    metadata.write_text("{")
    with pytest.raises(ValueError, match="cannot read"):
        TokenVerifier.from_openid_configuration(metadata)


def test_shared_key_can_be_switched_off_and_bearer_needs_an_issuer(issuer: LocalIssuer) -> None:
    tokens = TokenVerifier.from_openid_configuration(issuer.openid_configuration)
    off = SharedKeyVerifier(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY, tokens=tokens, shared_key_enabled=False)
    with pytest.raises(BatchError) as refused:
        off.verify("GET", "/pools", "", {"authorization": f"SharedKey {DEFAULT_ACCOUNT_NAME}:c2ln"})
    assert _detail(refused.value) == SHARED_KEY_DISABLED_DETAIL
    token = issuer.issue(BATCH_AUDIENCE).token
    principal = off.verify("GET", "/pools", "", {"authorization": f"Bearer {token}"})
    assert (principal.scheme, principal.object_id) == ("Bearer", issuer.object_id)
    no_issuer = SharedKeyVerifier(DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY)
    with pytest.raises(BatchError) as refused:
        no_issuer.verify("GET", "/pools", "", {"authorization": f"Bearer {token}"})
    assert "--entra-issuer" in _detail(refused.value)


# --------------------------------------------------------------------------------------------- the stack's modes
def test_stack_modes_are_recorded_and_a_mismatch_is_one_line() -> None:
    entra_only = StackMode(tls=True, shared_key=False)
    assert recorded_mode(entra_only.record()) == entra_only
    assert recorded_mode({"port": 8446}) == StackMode(tls=False, shared_key=True), "records from before TLS"
    assert StackMode(tls=True).satisfied_by(entra_only) and not StackMode(tls=True, shared_key=True).satisfied_by(
        entra_only
    )
    assert choose_mode(None, None, azurite_tls=None, own_storage=True) == StackMode()
    assert choose_mode(entra_only, StackMode(tls=True), azurite_tls=True, own_storage=True) == entra_only
    with pytest.raises(BackendUnavailableError, match="local down"):
        choose_mode(StackMode(tls=False, shared_key=True), StackMode(tls=True), azurite_tls=False, own_storage=True)
    with pytest.raises(BackendUnavailableError, match="Azurite runs without TLS"):
        choose_mode(None, StackMode(tls=True), azurite_tls=False, own_storage=True)
    with pytest.raises(ConfigurationError, match="BATCHBOX_STORAGE_CONNECTION_STRING"):
        choose_mode(None, StackMode(tls=True), azurite_tls=None, own_storage=False)
    with pytest.raises(ValueError, match="only with TLS"):
        StackMode(tls=False, shared_key=False)


# -------------------------------------------------------------------------------------- settings and backends
def test_the_auth_setting(tmp_path: Path) -> None:
    assert load_settings({}).auth is None
    assert load_settings({"BATCHBOX_AUTH": "entra"}).entra
    assert load_settings({"BATCHBOX_AUTH": "key"}, auth="entra").auth == "entra"
    with pytest.raises(ConfigurationError, match="BATCHBOX_AUTH"):
        load_settings({"BATCHBOX_AUTH": "aad"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BATCHBOX_BATCH_KEY", "a2V5"),
        ("BATCHBOX_STORAGE_KEY", "a2V5"),
        ("BATCHBOX_STORAGE_CONNECTION_STRING", "AccountName=a;AccountKey=a2V5"),
    ],
)
def test_entra_on_azure_refuses_a_configured_key_instead_of_using_it(tmp_path: Path, variable: str, value: str) -> None:
    environ = {
        "BATCHBOX_BACKEND": "azure",
        "BATCHBOX_AUTH": "entra",
        "BATCHBOX_BATCH_URL": "https://acct.westeurope.batch.azure.com",
        "BATCHBOX_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net",
        variable: value,
    }
    with pytest.raises(ConfigurationError, match=variable) as refused:
        AzureBackend.from_settings(load_settings(environ))
    assert value not in str(refused.value)


def test_key_auth_on_azure_needs_the_keys(tmp_path: Path) -> None:
    environ = {
        "BATCHBOX_BACKEND": "azure",
        "BATCHBOX_AUTH": "key",
        "BATCHBOX_BATCH_URL": "https://acct.westeurope.batch.azure.com",
        "BATCHBOX_BATCH_ACCOUNT": "acct",
        "BATCHBOX_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net",
    }
    with pytest.raises(ConfigurationError, match="BATCHBOX_STORAGE_KEY"):
        AzureBackend.from_settings(load_settings(environ))
    environ["BATCHBOX_STORAGE_KEY"] = "a2V5"
    with pytest.raises(ConfigurationError, match="BATCHBOX_BATCH_KEY"):
        AzureBackend.from_settings(load_settings(environ))


def test_tls_certificates_last_long_enough(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path / "tls")
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    lifetime = cert.not_valid_after_utc - datetime.now(timezone.utc)
    assert timedelta(days=800) < lifetime <= timedelta(days=825)
