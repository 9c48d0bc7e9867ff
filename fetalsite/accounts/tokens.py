"""API tokens: who may hold one, when one stops working, and the writes (issue, rotate, revoke).

A token is bound to the same controls as a web session: it expires (``API_TOKEN_TTL_DAYS``), it ends when its
owner's password changes or the account is deactivated (``signals.py``), it is refused while the account is
locked out by django-axes, and only the roles in ``API_TOKEN_ROLES`` may hold one. Every refusal is logged by
the token's fingerprint, never its key."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from fetalsite.accounts.roles import api_token_roles
from fetalsite.core.errors import ApplicationError

logger = logging.getLogger("fetalsite.api")


class TokenNotAllowed(ApplicationError):
    http_status = 403
    code = "token_not_allowed"


@dataclass(frozen=True)
class TokenRefusal:
    """Why a presented token does not authenticate; ``revoke``: delete it, it can never work again."""

    code: str
    message: str
    revoke: bool


def user_may_hold_token(user) -> bool:
    """Membership of a role listed in API_TOKEN_ROLES; is_staff and is_superuser grant nothing here, and a service
    account (a DICOM sender's) never holds one."""
    return bool(
        user.is_active and not user.is_service_account and user.groups.filter(name__in=api_token_roles()).exists()
    )


def token_expires_at(token: Token) -> datetime:
    return token.created + timedelta(days=settings.API_TOKEN_TTL_DAYS)


def token_is_expired(token: Token) -> bool:
    return timezone.now() >= token_expires_at(token)


def user_is_locked_out(*, user, request: HttpRequest) -> bool:
    """Whether django-axes refuses this username from this client now (the same rule as a password login:
    AXES_LOCKOUT_PARAMETERS, the failure limit within the cool-off, whitelists)."""
    if not settings.AXES_ENABLED:
        return False
    return not AxesProxyHandler.is_allowed(request, credentials={"username": user.get_username()})


def token_refusal(*, token: Token, request: HttpRequest) -> TokenRefusal | None:
    """The first rule the token breaks, or None when it may be used for this request."""
    user = token.user
    if not user.is_active:
        return TokenRefusal("user_inactive", "This account is deactivated; its API token has been revoked.", True)
    if token_is_expired(token):
        return TokenRefusal(
            "token_expired",
            f"This API token expired (tokens last {settings.API_TOKEN_TTL_DAYS} days); "
            "log in at POST /api/v1/auth/token/ for a new one.",
            True,
        )
    if not user_may_hold_token(user):
        return TokenRefusal(
            "token_not_allowed",
            "This account's role may no longer hold an API token; the token has been revoked.",
            True,
        )
    if user_is_locked_out(user=user, request=request):
        # Not revoked: the lock-out ends by itself after the cool-off, as it does for password logins.
        return TokenRefusal(
            "account_locked",
            "This account is locked after too many failed logins; try again later or ask an admin to unlock it.",
            False,
        )
    return None


def _check_may_hold_token(user) -> None:
    if not user_may_hold_token(user):
        logger.warning("API token refused to %s (user #%s): role not in API_TOKEN_ROLES", user.username, user.id)
        raise TokenNotAllowed(
            "Your account's role may not hold an API token (allowed: "
            f"{', '.join(api_token_roles()) or 'none'}). Use the web app, or ask an admin for an integrator account."
        )


@transaction.atomic
def token_get_or_create(*, user) -> Token:
    """The user's token; a new one when there is none or the old one has expired."""
    _check_may_hold_token(user)
    token, created = Token.objects.get_or_create(user=user)
    if not created and token_is_expired(token):
        token.delete()
        token, created = Token.objects.create(user=user), True
        logger.info("Expired API token of %s (user #%s) replaced", user.username, user.id)
    elif created:
        logger.info("API token issued to %s (user #%s)", user.username, user.id)
    return token


@transaction.atomic
def token_rotate(*, user) -> Token:
    """Replace the user's token: the old key stops working at once."""
    _check_may_hold_token(user)
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    logger.info("API token rotated by %s (user #%s)", user.username, user.id)
    return token


@transaction.atomic
def token_revoke(*, user, reason: str = "revoked by its owner") -> None:
    """Delete the user's token, if any; a new login issues a new one (when the role allows it)."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        logger.info("API token of %s (user #%s) revoked: %s", user.username, user.id, reason)
