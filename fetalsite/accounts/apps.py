from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "fetalsite.accounts"
    label = "accounts"
    verbose_name = "Accounts and clinics"
