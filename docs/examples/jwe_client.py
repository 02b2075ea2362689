"""Send an encrypted participation search to hr-gateway and decrypt the answer.

The request body is a JWE compact serialization (alg ``dir``, enc ``A256GCM``,
``kid`` = the client's JWE key id) made with jwcrypto, a JOSE library that has
nothing to do with the gateway's own. ``Accept: application/jose`` asks for the
response to be encrypted the same way.

Requires ``pip install jwcrypto httpx``. Against a sandbox gateway::

    python docs/examples/jwe_client.py --base-url http://127.0.0.1:8080 \\
        --api-key hgw_test_... \\
        --jwe-key '{"k": "...", "kty": "oct", "kid": "ck_...", "alg": "dir", "use": "enc"}'

``--api-key`` and ``--jwe-key`` are the "API key" and "JWE key" lines of the sandbox
banner (or ``api_key`` and ``jwe_key`` from ``hr-gateway clients create --json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import httpx
from jwcrypto import jwe, jwk

SEARCH_PATH = "/v1/social-security/participation-searches"
WANG_FANG = {"id_number": "440104199003120213", "name": "Wang Fang"}


def encrypt(payload: dict, key: jwk.JWK, kid: str) -> str:
    """JWE compact serialization of ``payload`` under the client's own key."""
    header = {"alg": "dir", "enc": "A256GCM", "kid": kid}
    token = jwe.JWE(json.dumps(payload).encode("utf-8"), protected=json.dumps(header))
    token.add_recipient(key)
    return token.serialize(compact=True)


def decrypt(token: str, key: jwk.JWK) -> tuple[dict, bytes]:
    """The protected header and the plaintext of a JWE compact serialization."""
    received = jwe.JWE()
    received.deserialize(token, key=key)
    return json.loads(received.objects["protected"]), received.payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080", help="the gateway (default %(default)s)")
    parser.add_argument("--api-key", required=True, help="hgw_test_… or hgw_live_…")
    parser.add_argument("--jwe-key", required=True, help="the client's JWE key as a JSON object (a JWK with kid)")
    args = parser.parse_args(argv)

    try:
        jwk_fields = json.loads(args.jwe_key)
        key = jwk.JWK(**jwk_fields)
    except (ValueError, TypeError) as exc:
        parser.error(f"--jwe-key is not a JWK JSON object: {exc}")
    kid = jwk_fields.get("kid")
    if not kid:
        parser.error("the JWE key has no kid")

    body = encrypt(WANG_FANG, key, kid)
    response = httpx.post(
        args.base_url.rstrip("/") + SEARCH_PATH,
        content=body,
        headers={
            "Authorization": f"Bearer {args.api_key}",
            "Content-Type": "application/jose",
            "Accept": "application/jose",
            "X-Request-ID": f"jwe-example-{uuid.uuid4().hex[:12]}",
        },
        timeout=30.0,
    )
    print(f"HTTP {response.status_code}  Content-Type: {response.headers.get('content-type')}  "
          f"X-Request-ID: {response.headers.get('x-request-id')}", file=sys.stderr)

    if response.headers.get("content-type", "").startswith("application/jose"):
        header, plaintext = decrypt(response.text, key)
        print(f"response header: {json.dumps(header)}", file=sys.stderr)
        print(json.dumps(json.loads(plaintext), indent=2, ensure_ascii=False))
    else:
        # Refused before the client's key was known (e.g. a wrong API key): plain problem+json.
        print(response.text)
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
