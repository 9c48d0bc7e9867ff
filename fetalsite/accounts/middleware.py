"""Log a person off after SESSION_IDLE_TIMEOUT_S without an action of theirs."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse

# Requests a page makes by itself (progress polling) must not keep an unattended session alive.
BACKGROUND_HEADER = "X-Background-Poll"
SESSION_KEY = "last_activity"


class IdleSessionTimeoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        # Only cookie sessions idle out; token-authenticated API calls carry no session.
        if user is not None and user.is_authenticated and request.session.session_key:
            now = time.time()
            if now - request.session.get(SESSION_KEY, now) > settings.SESSION_IDLE_TIMEOUT_S:
                logout(request)
                wants_json = request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")
                if wants_json:
                    return JsonResponse(
                        {"detail": "Your session ended after inactivity; log in again.", "code": "session_expired"},
                        status=401,
                    )
                return redirect_to_login(request.get_full_path())
            if not request.headers.get(BACKGROUND_HEADER):
                request.session[SESSION_KEY] = now
        return self.get_response(request)
