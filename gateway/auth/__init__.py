"""API keys, clients and scopes."""

from .clients import Client, ClientStore, IssuedClient, key_environment
from .scopes import SCOPES, parse_scopes

__all__ = ["SCOPES", "Client", "ClientStore", "IssuedClient", "key_environment", "parse_scopes"]
