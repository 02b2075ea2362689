"""Which receiver URLs an endpoint may have.

Checked at registration, and the live rule on addresses again before every live
delivery (a host name may resolve to a private address later): the gateway must not
become a way to reach the operator's internal network.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ..errors import ProblemError

__all__ = ["MAX_URL_LENGTH", "check_url", "forbidden_address"]

MAX_URL_LENGTH = 2000
_HOST = re.compile(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def forbidden_address(address: str) -> bool:
    """Loopback, private, link-local and other non-public addresses."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _local_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in _LOCAL_NAMES or host.endswith(".localhost")


def check_url(url: str, *, environment: str, allow_private: bool = False) -> str:
    """The URL as given, or ProblemError ``invalid_webhook_url`` (not a usable
    absolute URL) or ``webhook_url_not_allowed`` (usable, but against the rules of
    the environment)."""

    def invalid(why: str) -> ProblemError:
        return ProblemError("invalid_webhook_url", f"url: {why}", field="url")

    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"at most {MAX_URL_LENGTH} characters")
    if not url or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or ord(c) > 0x7E for c in url):
        raise invalid("an absolute http(s) URL of visible ASCII characters, without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise invalid("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise invalid("the scheme must be https (or http in the sandbox)")
    if "@" in parts.netloc:
        raise invalid("credentials in the URL are not accepted; verify the signature instead")
    if parts.fragment or url.endswith("#"):
        raise invalid("a fragment is not sent to the receiver; remove it")
    host = parts.netloc.rsplit(":", 1)[0] if port is not None or parts.netloc.endswith(":") else parts.netloc
    if not host or not _HOST.fullmatch(host) or host.startswith((".", "-")) or ".." in host:
        raise invalid("the host is missing or not a valid host name or IP address")
    if host.startswith("[") and not _is_ip(host[1:-1]):
        raise invalid("the host is not a valid IPv6 address")
    if port == 0:
        raise invalid("port 0 is not a port")
    if environment == "live":
        if parts.scheme != "https":
            raise ProblemError("webhook_url_not_allowed", "url: live endpoints must use https", field="url")
        if not allow_private and (_local_name(host) or forbidden_address(host)):
            raise ProblemError(
                "webhook_url_not_allowed",
                "url: live endpoints may not point at loopback, private or link-local addresses",
                field="url",
            )
    return url


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
