"""Mock bureau for the ``xml-gbk`` protocol (docs/dialects/xml-gbk.md)."""

from mocks.xml_gbk.bureau import XmlGbkBureau

__all__ = ["XmlGbkBureau"]
