import hashlib
import hmac

import pytest

from gateway.webhooks import SignatureError, sign, verify
from gateway.webhooks.signing import compute_signature, new_secret

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"transfer.completed"}'


def test_known_vector():
    expected = hmac.new(b"whsec_test", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1700000000, BODY) == expected
    assert sign(SECRET, BODY, timestamp=1700000000) == f"t=1700000000,v1={expected}"
    # Fixed, so a change of the signed message (or of the key's encoding) cannot pass unnoticed.
    assert expected == "807f027fafa74e346ba50d22b5a5be3c27d2494fc0da36892fd4c45cb37006b4"


def test_verify_accepts_a_fresh_signature():
    header = sign(SECRET, BODY, timestamp=1700000000)
    assert verify(SECRET, BODY, header, now=1700000100) == 1700000000


@pytest.mark.parametrize(
    "body, secret, now",
    [
        (BODY + b" ", SECRET, 1700000000),  # tampered body
        (BODY, "whsec_other", 1700000000),  # wrong secret
        (BODY, SECRET, 1700000000 + 301),  # too old: a replay
        (BODY, SECRET, 1700000000 - 301),  # from the future
    ],
)
def test_verify_rejects(body, secret, now):
    header = sign(SECRET, BODY, timestamp=1700000000)
    with pytest.raises(SignatureError):
        verify(secret, body, header, now=now)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=1700000000", "t=soon,v1=abc", "garbage"])
def test_verify_rejects_malformed_headers(header):
    with pytest.raises(SignatureError):
        verify(SECRET, BODY, header, now=1700000000)


def test_any_of_several_v1_values_may_match():
    good = compute_signature(SECRET, 1700000000, BODY)
    assert verify(SECRET, BODY, f"t=1700000000,v1=deadbeef,v1={good}", now=1700000000)


def test_secrets_are_prefixed_and_random():
    a, b = new_secret(), new_secret()
    assert a.startswith("whsec_") and len(a) > 40 and a != b


def test_the_example_receiver_accepts_what_the_gateway_signs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[4] / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.verify(SECRET, BODY, sign(SECRET, BODY))
    assert not module.verify(SECRET, BODY + b"x", sign(SECRET, BODY))
    assert not module.verify(SECRET, BODY, sign(SECRET, BODY, timestamp=1700000000))
