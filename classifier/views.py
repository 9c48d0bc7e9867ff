from django.views.generic import TemplateView

from classifier import selectors
from fetalsite.accounts.mixins import StaffPageMixin


class ModelInfoView(StaffPageMixin, TemplateView):
    """The active model, its card's figures and what it is for: decision support, not diagnosis."""

    template_name = "classifier/model.html"

    def get_context_data(self, **kwargs):
        model = selectors.active_model_version()
        figures = selectors.model_card_figures(model_version=model) if model else None
        return {**super().get_context_data(**kwargs), "model": model, "figures": figures}
