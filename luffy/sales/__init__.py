"""Flash sales for visitors: the list of current and upcoming sales and a light status route."""

from luffy.sales.views import bp  # noqa: F401  (the blueprint, with its routes)
