import logging

import pytest

from gateway.logging import MaskingFormatter, configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_id_numbers_are_masked_in_any_log_record(capsys, restore_logging):
    configure_logging("INFO")
    logging.getLogger("anything").info("looked up %s and 33010219870715042X", "440104199003120213")
    err = capsys.readouterr().err
    assert "4401**********0213" in err and "3301**********042X" in err
    assert "440104199003120213" not in err


def test_tracebacks_are_masked_too(capsys, restore_logging):
    configure_logging("INFO")
    try:
        raise ValueError("bad person 440104199003120213")
    except ValueError:
        logging.getLogger("anything").exception("failed")
    err = capsys.readouterr().err
    assert "ValueError: bad person 4401**********0213" in err
    assert "440104199003120213" not in err


def test_other_numbers_are_left_alone():
    record = logging.LogRecord("x", logging.INFO, "f", 1, "order %s", ("12345678",), None)
    assert MaskingFormatter().format(record) == "order 12345678"
