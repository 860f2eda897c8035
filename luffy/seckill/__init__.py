"""Flash-sale ("秒杀") feature: the sale page, the buy and result API, orders and reconciliation."""

from flask import Blueprint

bp = Blueprint("seckill", __name__)
BUY_PATH = "/api/v1/user/seckill/seckill/"


@bp.record_once
def _init(state):
    from luffy.seckill import services
    from luffy.seckill.gate import BuyGate

    services.init_app(state.app)
    state.app.wsgi_app = BuyGate(
        state.app,
        state.app.wsgi_app,
        state.app.extensions["luffy_seckill_sold_out"],
        BUY_PATH,
        services.REFUSALS["sold_out"][1],
    )


from luffy.seckill import views  # noqa: E402,F401  (registers the routes)
