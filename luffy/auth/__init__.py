"""Auth feature: log in and out with a Flask-Login session."""

from luffy.auth.views import bp  # noqa: F401  (the blueprint, with its routes)
