"""Orders for buyers: the logged-in user's own orders."""

from luffy.orders.views import bp  # noqa: F401  (the blueprint, with its routes)
