import pytest

from gateway.encryption import FieldCipher, Keyring, mask_id_number
from gateway.encryption.jwe import JweError, decrypt_body, encrypt_body
from joserfc.jwk import OctKey, RSAKey


def test_field_cipher_round_trip_and_column_binding():
    cipher = FieldCipher(Keyring.generate())
    token = cipher.encrypt("440104199003120213", "enrolments.id_number")
    assert "440104199003120213" not in token
    assert cipher.decrypt(token, "enrolments.id_number") == "440104199003120213"
    with pytest.raises(ValueError):
        cipher.decrypt(token, "enrolments.name")  # copied into another column: refused


def test_old_keys_still_decrypt_after_rotation(tmp_path):
    keyring = Keyring.generate()
    keyring.save(tmp_path / "k.json")
    cipher = FieldCipher(keyring)
    old = cipher.encrypt("x", "c")
    new_kid = keyring.add_data_key()
    new = cipher.encrypt("x", "c")
    assert new.startswith(new_kid + ".") and not old.startswith(new_kid)
    assert cipher.decrypt(old, "c") == cipher.decrypt(new, "c") == "x"


def test_cipher_picks_up_a_rotation_made_by_another_process(tmp_path):
    path = tmp_path / "k.json"
    Keyring.generate().save(path)
    running = FieldCipher(Keyring.load(path))
    other = Keyring.load(path)
    other.add_data_key()
    other.save()
    token = FieldCipher(other).encrypt("y", "c")
    assert running.decrypt(token, "c") == "y"


def test_blind_index_is_keyed_and_normalised():
    a, b = FieldCipher(Keyring.generate()), FieldCipher(Keyring.generate())
    assert a.blind_index("33010219870715042x") == a.blind_index(" 33010219870715042X")
    assert a.blind_index("440104199003120213") != b.blind_index("440104199003120213")


def test_mask():
    assert mask_id_number("440104199003120213") == "4401**********0213"


def test_keyring_file_is_private_and_reloadable(tmp_path):
    path = tmp_path / "keyring.json"
    keyring = Keyring.load_or_create(path)
    assert path.stat().st_mode & 0o077 == 0
    assert Keyring.load_or_create(path).data_keys == keyring.data_keys


def test_jwe_round_trip_and_refusals():
    key = OctKey.generate_key(256)
    gateway_key = RSAKey.generate_key(2048, parameters={"kid": "gw"})
    token = encrypt_body(b'{"a":1}', client_kid="k1", client_key=key, content_type="application/json")
    assert decrypt_body(token, client_kid="k1", client_key=key, gateway_key=gateway_key) == b'{"a":1}'
    with pytest.raises(JweError, match="unknown kid"):
        decrypt_body(token, client_kid="k2", client_key=key, gateway_key=gateway_key)
    with pytest.raises(JweError):
        decrypt_body(token, client_kid="k1", client_key=OctKey.generate_key(256), gateway_key=gateway_key)


def test_key_rotation_covers_every_encrypted_column() -> None:
    """A new ``*_enc`` column that rotation does not know would keep the old key forever."""
    from gateway.encryption.rotation import ENCRYPTED_COLUMNS
    from gateway.store import metadata

    stored = {(t.name, c.name) for t in metadata.tables.values() for c in t.columns if c.name.endswith("_enc")}
    rotated = {(table.name, column) for table, column, _ in ENCRYPTED_COLUMNS}
    assert rotated == stored
    # The associated data names the column, as the services encrypt it.
    assert all(context == f"{table.name}.{column.removesuffix('_enc')}" for table, column, context in ENCRYPTED_COLUMNS)
