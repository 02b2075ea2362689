"""Which mock server class serves which dialect name.

Bureaus serve one region each (``MOCK_DIALECTS``: ``factory(region, **kwargs)``);
banks and ERPs serve no region (``MOCK_UPSTREAMS``: ``factory(**kwargs)``).
"""

from __future__ import annotations

from collections.abc import Callable

from mocks.iso20022 import Iso20022Bank
from mocks.json_hmac import JsonHmacBureau
from mocks.kingdee import KingdeeErp
from mocks.odata import ODataErp
from mocks.openbanking import OpenBankingBank
from mocks.server import MockServer
from mocks.sm4_async import Sm4AsyncBureau
from mocks.xml_gbk import XmlGbkBureau

MOCK_DIALECTS: dict[str, Callable[..., MockServer]] = {
    JsonHmacBureau.dialect: JsonHmacBureau,
    XmlGbkBureau.dialect: XmlGbkBureau,
    Sm4AsyncBureau.dialect: Sm4AsyncBureau,
}

MOCK_UPSTREAMS: dict[str, Callable[..., MockServer]] = {
    Iso20022Bank.dialect: Iso20022Bank,
    OpenBankingBank.dialect: OpenBankingBank,
    ODataErp.dialect: ODataErp,
    KingdeeErp.dialect: KingdeeErp,
}
