"""Flash-sale ("秒杀") feature: the sale page, the buy and result API, orders and reconciliation."""

from flask import Blueprint

bp = Blueprint("seckill", __name__)


@bp.record_once
def _init(state):
    from luffy.seckill import services

    services.init_app(state.app)


from luffy.seckill import views  # noqa: E402,F401  (registers the routes)
