"""Which mock server class serves which dialect name."""

from __future__ import annotations

from collections.abc import Callable

from mocks.json_hmac import JsonHmacBureau
from mocks.server import MockServer
from mocks.sm4_async import Sm4AsyncBureau
from mocks.xml_gbk import XmlGbkBureau

MOCK_DIALECTS: dict[str, Callable[..., MockServer]] = {
    JsonHmacBureau.dialect: JsonHmacBureau,
    XmlGbkBureau.dialect: XmlGbkBureau,
    Sm4AsyncBureau.dialect: Sm4AsyncBureau,
}
