from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied

from fetalsite.accounts.roles import user_is_integrator


class StaffPageMixin(LoginRequiredMixin):
    """Web pages are for people; integrator machine accounts use the API.

    ``page_permission`` refuses a page early, so a role that may not act is not shown a form it cannot submit;
    the service behind the page checks again, and that check is the rule."""

    http_method_names = ["get", "head", "post"]
    page_permission: str | None = None

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            if user_is_integrator(request.user):
                raise PermissionDenied("Integrator accounts use the API, not the web pages.")
            if self.page_permission and not request.user.has_perm(self.page_permission):
                raise PermissionDenied("Your role does not allow this action.")
        return super().dispatch(request, *args, **kwargs)
