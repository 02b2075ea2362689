"""Logging that cannot leak resident ID numbers.

A filter on the root handlers masks anything shaped like an 18-character ID number
in every record, whatever logger produced it.
"""

from __future__ import annotations

import logging

from .encryption import mask_id_numbers_in

__all__ = ["MaskIdNumbers", "configure_logging"]


class MaskIdNumbers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_id_numbers_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(MaskIdNumbers())
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
