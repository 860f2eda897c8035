"""Flash-sale ("秒杀") feature: the sale page, the buy and result API, orders and reconciliation.

docs/flash-sale.md walks through a buy from request to notice.
"""

from luffy.seckill.views import BUY_PATH, bp  # noqa: F401  (the blueprint, with its routes)
