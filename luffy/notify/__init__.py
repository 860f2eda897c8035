"""Notifications: queue an e-mail (admins) or an SMS verification code (logged-in users)."""

from luffy.notify.views import bp  # noqa: F401  (the blueprint, with its routes)
