"""Logging that cannot leak resident ID numbers.

The formatter masks anything shaped like an 18-character ID number in the final
text of every record (message, arguments and traceback alike), whatever logger
produced it.
"""

from __future__ import annotations

import logging

from .encryption import mask_id_numbers_in

__all__ = ["MaskingFormatter", "configure_logging"]


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_id_numbers_in(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every upstream URL at INFO; the audit log records those calls instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The gateway writes its own access log (with request ids, without query strings).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
