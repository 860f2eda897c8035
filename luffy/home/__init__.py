"""Home feature: the page with the banner carousel and the banner API."""

from luffy.home.views import bp  # noqa: F401  (the blueprint, with its routes)
