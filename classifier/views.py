from django.views.generic import TemplateView

from classifier import selectors
from fetalsite.accounts.mixins import StaffPageMixin


class ModelInfoView(StaffPageMixin, TemplateView):
    template_name = "classifier/model.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "model": selectors.active_model_version()}
