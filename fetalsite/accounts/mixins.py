from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied

from fetalsite.accounts.roles import user_is_integrator


class StaffPageMixin(LoginRequiredMixin):
    """Web pages are for people; integrator machine accounts use the API."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and user_is_integrator(request.user):
            raise PermissionDenied("Integrator accounts use the API, not the web pages.")
        return super().dispatch(request, *args, **kwargs)
