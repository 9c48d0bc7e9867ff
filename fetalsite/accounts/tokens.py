"""Writes of API tokens: one per user, issued at login, rotated or revoked by its owner."""

from __future__ import annotations

import logging

from django.db import transaction
from rest_framework.authtoken.models import Token

logger = logging.getLogger("fetalsite.api")


@transaction.atomic
def token_get_or_create(*, user) -> Token:
    token, created = Token.objects.get_or_create(user=user)
    if created:
        logger.info("API token issued to %s (user #%s)", user.username, user.id)
    return token


@transaction.atomic
def token_rotate(*, user) -> Token:
    """Replace the user's token: the old key stops working at once."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    logger.info("API token rotated by %s (user #%s)", user.username, user.id)
    return token


@transaction.atomic
def token_revoke(*, user) -> None:
    """Delete the user's token; a new login issues a new one."""
    Token.objects.filter(user=user).delete()
    logger.info("API token revoked by %s (user #%s)", user.username, user.id)
