"""Built-in social-insurance bureau adapters, one module per protocol family."""

from .json_hmac import JsonHmacBureauAdapter

__all__ = ["JsonHmacBureauAdapter"]
