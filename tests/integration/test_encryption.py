"""JWE bodies interoperating with another JOSE library (jwcrypto), and PII at rest."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from jwcrypto import jwe as jc_jwe
from jwcrypto import jwk as jc_jwk

from gateway.store import enrolments, idempotency_records
from tests.conftest import LI_MING, WANG_FANG

SEARCH = "/v1/social-security/participation-searches"
LI_MING_ENROLMENT = {
    "employee": LI_MING,
    "employer": {"uscc": "91440101MA59BX4C3Y", "name": "广州示例科技有限公司"},
    "region": "440100",
    "hire_date": "2026-11-02",
    "insurance_types": ["pension"],
    "contribution_base": "8000.00",
}
ENROL = "/v1/social-security/enrolments"


def client_key(api) -> jc_jwk.JWK:
    return jc_jwk.JWK(**api.issued["jwe_key"])


def seal(payload: dict, key: jc_jwk.JWK, header: dict) -> str:
    token = jc_jwe.JWE(json.dumps(payload).encode(), protected=json.dumps(header))
    token.add_recipient(key)
    return token.serialize(compact=True)


def dir_header(api, **extra) -> dict:
    return {"alg": "dir", "enc": "A256GCM", "kid": api.issued["kid"], **extra}


def jose_headers(api, **extra) -> dict:
    return api.headers(**{"Content-Type": "application/jose", **extra})


async def test_encrypted_request_and_response_round_trip(api):
    token = seal(WANG_FANG, client_key(api), dir_header(api))
    r = await api.http.post(SEARCH, content=token, headers=jose_headers(api, Accept="application/jose"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/jose"
    received = jc_jwe.JWE()
    received.deserialize(r.text, key=client_key(api))
    header = json.loads(received.objects["protected"])
    assert header["alg"] == "dir" and header["enc"] == "A256GCM" and header["kid"] == api.issued["kid"]
    assert json.loads(received.payload)["active_regions"] == ["440100"]


async def test_encrypted_request_with_plain_response(api):
    token = seal(WANG_FANG, client_key(api), dir_header(api))
    r = await api.http.post(SEARCH, content=token, headers=jose_headers(api))
    assert r.status_code == 200 and r.json()["active_regions"] == ["440100"]


async def test_encrypting_to_the_gateways_public_key(api):
    jwks = (await api.http.get("/.well-known/jwks.json")).json()
    public = jwks["keys"][0]
    assert "d" not in public and public["kty"] == "RSA"
    key = jc_jwk.JWK(**public)
    token = seal(WANG_FANG, key, {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": public["kid"]})
    r = await api.http.post(SEARCH, content=token, headers=jose_headers(api))
    assert r.status_code == 200, r.text


async def test_error_responses_are_encrypted_when_asked(api):
    token = seal({"id_number": "440104199003120214", "name": "x"}, client_key(api), dir_header(api))
    r = await api.http.post(SEARCH, content=token, headers=jose_headers(api, Accept="application/jose"))
    assert r.status_code == 422
    received = jc_jwe.JWE()
    received.deserialize(r.text, key=client_key(api))
    assert json.loads(received.payload)["code"] == "invalid_id_number"


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def raw_dir_token(api, header: dict, payload: dict) -> str:
    """A hand-built dir/A256GCM token, for headers JOSE libraries refuse to write."""
    import base64
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = base64.urlsafe_b64decode(api.issued["jwe_key"]["k"] + "==")
    protected = _b64(json.dumps(header).encode())
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, json.dumps(payload).encode(), protected.encode())
    return ".".join([protected, "", _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:])])


def test_raw_tokens_are_valid_when_the_header_is(api_free_key={"k": _b64(b"k" * 32)}):
    """The hand-built token helper itself produces what jwcrypto accepts."""

    class Fake:
        issued = {"jwe_key": {"kty": "oct", **api_free_key}}

    token = raw_dir_token(Fake, {"alg": "dir", "enc": "A256GCM"}, {"a": 1})
    received = jc_jwe.JWE()
    received.deserialize(token, key=jc_jwk.JWK(kty="oct", **api_free_key))
    assert json.loads(received.payload) == {"a": 1}


def _tamper(token: str) -> str:
    parts = token.split(".")
    ciphertext = parts[3]
    parts[3] = ("A" if ciphertext[0] != "A" else "B") + ciphertext[1:]
    return ".".join(parts)


@pytest.mark.parametrize(
    "make",
    [
        lambda api: _tamper(seal(WANG_FANG, client_key(api), dir_header(api))),
        lambda api: seal(WANG_FANG, jc_jwk.JWK.generate(kty="oct", size=256), dir_header(api)),
        lambda api: seal(WANG_FANG, client_key(api), dir_header(api, kid="ck_unknown")),
        lambda api: raw_dir_token(api, {"alg": "dir", "enc": "A128GCM", "kid": api.issued["kid"]}, WANG_FANG),
        lambda api: raw_dir_token(api, dir_header(api, zip="DEF"), WANG_FANG),
        lambda api: raw_dir_token(api, dir_header(api, crit=["exp"], exp=1), WANG_FANG),
        lambda api: raw_dir_token(api, {"alg": "none", "enc": "A256GCM", "kid": api.issued["kid"]}, WANG_FANG),
        lambda api: "not.a.jwe",
        lambda api: "a.b.c.d.e",
        lambda api: "\u00ff\u00fe",
        lambda api: "",
    ],
    ids=["tampered", "wrong-key", "unknown-kid", "wrong-enc", "compressed", "crit", "alg-none",
         "three-parts", "garbage-parts", "binary", "empty"],
)
async def test_bad_jwe_is_a_400(api, make):
    token = make(api)
    r = await api.http.post(SEARCH, content=token.encode("utf-8"), headers=jose_headers(api))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_jwe"
    assert sum(b.count() for b in api.bureaus.values()) == 0


async def test_reencrypted_retry_is_the_same_idempotent_request(api):
    body = LI_MING_ENROLMENT
    idem = str(uuid.uuid4())
    first = await api.http.post(ENROL, content=seal(body, client_key(api), dir_header(api)),
                                headers=jose_headers(api, **{"Idempotency-Key": idem}))
    second = await api.http.post(ENROL, content=seal(body, client_key(api), dir_header(api)),
                                 headers=jose_headers(api, **{"Idempotency-Key": idem}))
    assert first.status_code == 201, first.text
    assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"
    assert api.bureaus["440100"].count("/api/v1/enrolment/submit") == 1


async def test_pii_is_encrypted_at_rest(api):
    body = LI_MING_ENROLMENT
    r = await api.http.post(ENROL, json=body, headers=api.headers(**{"Idempotency-Key": str(uuid.uuid4())}))
    assert r.status_code == 201
    rows = await api.rows(sa.select(enrolments)) + await api.rows(sa.select(idempotency_records))
    dump = json.dumps([[str(v) for v in row] for row in rows], ensure_ascii=False)
    assert LI_MING["id_number"] not in dump
    assert LI_MING["name"] not in dump
    enrolment = (await api.rows(sa.select(enrolments)))[0]
    assert enrolment.id_number_enc.startswith(api.gateway.keyring.active + ".")
    assert enrolment.person_bidx == api.gateway.cipher.blind_index(LI_MING["id_number"])


async def test_audit_events_carry_no_pii(api):
    await api.http.post(SEARCH, json=WANG_FANG, headers=api.headers())
    r = await api.http.get("/v1/audit-events", headers=api.headers())
    assert r.status_code == 200
    assert r.json(), "every upstream call is audited"
    assert WANG_FANG["id_number"] not in r.text and "Wang" not in r.text
