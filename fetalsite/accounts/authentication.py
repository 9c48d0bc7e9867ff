"""Token authentication that applies the token rules and logs every use and every refusal (never the key).

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
    """``Authorization: Token <key>``, held to the session controls (fetalsite.accounts.tokens.token_refusal:
    expiry, deactivation, role, axes lock-out). Every use and every refusal is logged (never the key)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, token = result
        # Imported here: DRF loads this class while it starts, before the apps' models are ready.
        from fetalsite.accounts import tokens

        refusal = tokens.token_refusal(token=token, request=request._request)
        if refusal is not None:
            logger.warning(
                "API token refused for %s (user #%s), token %s: %s",
                user.username,
                user.id,
                token_fingerprint(token.key),
                refusal.code,
            )
            if refusal.revoke:
                tokens.token_revoke(user=user, reason=refusal.code)
            raise exceptions.AuthenticationFailed(refusal.message, code=refusal.code)
        logger.info("API token used by %s (user #%s), token %s", user.username, user.id, token_fingerprint(token.key))
        return user, token

    def authenticate_credentials(self, key):
        """The token and its user, inactive or not: ``authenticate`` refuses an inactive one and deletes it."""
        model = self.get_model()
        try:
            token = model.objects.select_related("user").get(key=key)
        except model.DoesNotExist:
            logger.warning("API token rejected: unknown token %s", token_fingerprint(key))
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return token.user, token
