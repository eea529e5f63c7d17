"""Authentication: ServiceAccount bearer tokens, and the trusted admin socket.

Tokens are minted through the TokenRequest API (``POST .../serviceaccounts/<name>/token``)
and are opaque random strings (not JWTs: nothing here verifies signatures, and the pods only
pass the token back).  A token is bound to the ServiceAccount's uid, as a projected token is:
once that ServiceAccount is deleted (or recreated), the token no longer authenticates.
Requests on the admin Unix socket are :data:`~.rbac.ADMIN` (``system:masters``).

Identity travels from the listener to the handler in one internal header,
:data:`IDENTITY_HEADER`, set by the listener after it authenticates the request; any copy a
client sends is stripped first, so it cannot be forged (the same pattern as the real
server's front-proxy ``X-Remote-User`` headers).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from lab.apiserver import resources
from lab.apiserver.rbac import User
from lab.apiserver.store import Store

IDENTITY_HEADER = "X-Ironlb-Lab-Identity"


@dataclass(frozen=True)
class _Binding:
    namespace: str
    name: str
    uid: str


class Tokens:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._tokens: dict[str, _Binding] = {}

    def mint(self, namespace: str, name: str) -> str | None:
        """A new token for an existing ServiceAccount (None: it does not exist)."""
        account = self.store.get(resources.SERVICE_ACCOUNTS.key, namespace, name)
        if account is None:
            return None
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Binding(namespace, name, str(account["metadata"]["uid"]))
        return token

    def authenticate(self, authorization: str) -> User | None:
        """The user a ``Bearer <token>`` header stands for (None: 401)."""
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        binding = self._tokens.get(token.strip())
        if binding is None:
            return None
        account = self.store.get(resources.SERVICE_ACCOUNTS.key, binding.namespace, binding.name)
        if account is None or account["metadata"].get("uid") != binding.uid:
            return None
        return User.service_account(binding.namespace, binding.name)


def encode(user: User) -> str:
    return json.dumps({"name": user.name, "groups": list(user.groups)})


def decode(value: str) -> User | None:
    try:
        data = json.loads(value)
        return User(str(data["name"]), tuple(str(g) for g in data["groups"]))
    except (ValueError, KeyError, TypeError):
        return None
