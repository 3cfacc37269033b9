"""API keys: each belongs to one tenant; only a hash of its secret is stored.

A key reads `msk_<key_id>_<secret>`: `key_id` finds the row, the secret's SHA-256 is compared
in constant time. Secrets are 256 random bits, so a fast hash is enough (no password KDF).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time

from memsvc.errors import AuthError, InvalidInput, NotFound
from memsvc.models import ApiKey
from memsvc.store.data import ApiKeyData
from memsvc.store.database import Database
from memsvc.validation import check_ident

__all__ = ["KeyManager"]

TOKEN = re.compile(r"^msk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _model(key: ApiKeyData) -> ApiKey:
    return ApiKey(
        key_id=key.key_id,
        tenant=key.tenant,
        name=key.name,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


class KeyManager:
    """Create, list, revoke and check API keys (an admin surface: not tenant-scoped)."""

    def __init__(self, db: Database, *, cache_seconds: float = 1.0) -> None:
        self.db = db
        # Verified tokens for a moment, to spare a database read per request. A revoke in
        # this process clears it at once; one made elsewhere holds within `cache_seconds`.
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[str, float]] = {}
        self._cache_lock = threading.Lock()

    def create(self, tenant: str, *, name: str | None = None) -> tuple[ApiKey, str]:
        """A new key for `tenant` (created if new); returns (key, token). Show the token
        once: it cannot be recovered."""
        check_ident(tenant, field="tenant", required=True)
        if name is not None and (not isinstance(name, str) or len(name) > 128):
            raise InvalidInput("key name must be at most 128 characters", details={"field": "name"})
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.db.writing() as tx:
            tenant_pk = tx.tenancy.ensure(tenant)
            added = tx.keys.add(tenant_pk, key_id=key_id, secret_hash=_hash(secret), name=name)
        return _model(added), f"msk_{key_id}_{secret}"

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        with self.db.reading() as tx:
            tenant_pk = None
            if tenant is not None:
                tenant_pk = tx.tenancy.find(tenant)
                if tenant_pk is None:
                    return []
            return [_model(k) for k in tx.keys.all(tenant_pk)]

    def revoke(self, key_id: str) -> ApiKey:
        with self.db.writing() as tx:
            revoked = tx.keys.revoke(key_id)
            if revoked is None:
                raise NotFound(f"API key {key_id} not found", details={"key_id": key_id})
            key = _model(revoked)
        with self._cache_lock:
            self._cache.clear()
        return key

    def authenticate(self, token: str | None) -> str:
        """The tenant name for a valid, unrevoked token; `AuthError` otherwise."""
        if not token:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        m = TOKEN.match(token)
        if m is None:
            raise AuthError("invalid API key")
        digest = _hash(token)
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        tenant = self._check(m.group(1), m.group(2))
        if self.cache_seconds > 0:
            with self._cache_lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (tenant, now + self.cache_seconds)
        return tenant

    def _check(self, key_id: str, secret: str) -> str:
        with self.db.reading() as tx:
            key = tx.keys.find(key_id)
        ok = key is not None and hmac.compare_digest(key.secret_hash, _hash(secret))
        if not ok or key is None:
            raise AuthError("invalid API key")
        if key.revoked_at is not None:
            raise AuthError("API key has been revoked")
        return key.tenant
