"""A user's API token ends when their password changes or the account is deactivated, by whatever path the
user is saved (the admin, ``set_password`` + ``save``, management commands, services).

A receiver, not a service: the admin's password form, ``changepassword`` and Django's own hash upgrade save
the user directly, and each of them must end the token. ``QuerySet.update()`` bypasses signals; nothing in
this project changes passwords that way."""

from __future__ import annotations

from fetalsite.accounts import tokens

_REVOKE_REASON = "_api_token_revoke_reason"
_WATCHED_FIELDS = {"password", "is_active"}


def note_credential_change(sender, instance, raw: bool = False, update_fields=None, **kwargs) -> None:
    """pre_save: compare with the stored row and remember why the token must end."""
    if raw or instance.pk is None or (update_fields is not None and not _WATCHED_FIELDS & set(update_fields)):
        return
    stored = sender._base_manager.filter(pk=instance.pk).values("password", "is_active").first()
    if stored is None:
        return
    if stored["password"] != instance.password:
        # Also a hash upgrade at the next password login: the user's web sessions end then too.
        setattr(instance, _REVOKE_REASON, "password changed")
    elif not instance.is_active:
        setattr(instance, _REVOKE_REASON, "account deactivated")


def revoke_token_after_credential_change(sender, instance, raw: bool = False, **kwargs) -> None:
    """post_save: delete the token in the same transaction as the save."""
    reason = instance.__dict__.pop(_REVOKE_REASON, None)
    if reason and not raw:
        tokens.token_revoke(user=instance, reason=reason)
