"""Token authentication that logs every use and every rejected token (never the key itself).

A module of its own: DRF imports authentication classes while it starts, before the API modules."""

from __future__ import annotations

import hashlib
import logging

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

logger = logging.getLogger("fetalsite.api")


def token_fingerprint(key: str) -> str:
    """A short, non-reversible name for a token, safe to write to logs."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


class LoggedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``; every use and every unknown token is logged (never the key)."""

    def authenticate_credentials(self, key):
        try:
            user, token = super().authenticate_credentials(key)
        except exceptions.AuthenticationFailed:
            logger.warning("API token rejected: token %s", token_fingerprint(key))
            raise
        logger.info("API token used by %s (user #%s), token %s", user.username, user.id, token_fingerprint(key))
        return user, token
