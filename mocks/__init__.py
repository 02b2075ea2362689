"""Stand-alone mock upstream servers; import nothing from gateway/adapters.

Each mock is written from a dialect's wire-protocol description alone, so that it
can check the adapters instead of mirroring their mistakes. Besides the standard
library they use only third-party libraries, never project code: ``cryptography``
(sm4-async's SM4 and SM3), ``xmlschema``/``defusedxml`` and sepaxml's official XSD
(iso20022 uploads), ``joserfc`` (openbanking signatures).
"""

from mocks.cli import serve_forever
from mocks.dialects import MOCK_DIALECTS, MOCK_UPSTREAMS
from mocks.faults import Fault, parse_fault
from mocks.json_hmac import JsonHmacBureau
from mocks.sm4_async import Sm4AsyncBureau
from mocks.xml_gbk import XmlGbkBureau

__all__ = [
    "MOCK_DIALECTS",
    "MOCK_UPSTREAMS",
    "Fault",
    "JsonHmacBureau",
    "Sm4AsyncBureau",
    "XmlGbkBureau",
    "parse_fault",
    "serve_forever",
]
