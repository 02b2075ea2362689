import pytest

from gateway.errors import ProblemError
from gateway.idempotency import fingerprint, parse_idempotency_key


def test_fingerprint_ignores_json_formatting_but_not_content():
    a = fingerprint("POST", "/v1/x", b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("POST", "/v1/x", b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "/v1/x", b'{"a": 2, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/y", b'{"a": 1, "b": [1, 2]}')
    assert fingerprint("POST", "/v1/x", b"not json") != fingerprint("POST", "/v1/x", b"not json!")


@pytest.mark.parametrize("raw", ["abc", '"8e03978e-40d5-43e8-bc93-6894a57f9324"', "a" * 255, "k:1/2"])
def test_valid_keys(raw):
    assert parse_idempotency_key(raw) == raw.strip('"')


@pytest.mark.parametrize("raw", ["", "a b", "a" * 256, 'a"b', "é"])
def test_invalid_keys(raw):
    with pytest.raises(ProblemError) as info:
        parse_idempotency_key(raw)
    assert info.value.code == "invalid_idempotency_key"
