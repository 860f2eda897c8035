"""The peer of the flash-sale benchmark: Luffy plus a route that creates the order inside the
request, under a row lock (``SELECT ... FOR UPDATE``; on SQLite the guarded UPDATE takes the
database's write lock first), the way a flash sale is written without Redis or a queue."""

from flask import request
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from luffy import create_app
from luffy.extensions import csrf, db
from luffy.models import Order, Sale
from luffy.models.base import utcnow
from luffy.responses import ApiError, ok
from luffy.seckill.views import buyer_id, course_id_from

app = create_app()


@app.post("/bench/seckill-sync/")
@csrf.exempt  # checked below, as the real route does
def buy_sync():
    user_id = buyer_id()
    if user_id is None:
        raise ApiError(401, "请先登录")
    course_id = course_id_from(request.get_json(silent=True))
    csrf.protect()
    now = utcnow()
    session = db.session
    sale = session.scalar(
        select(Sale).where(Sale.course_id == course_id, Sale.state == Sale.OPEN).with_for_update()
    )
    if sale is None:
        raise ApiError(404, "该课程没有秒杀活动")
    if sale.phase(now) != "running":
        session.rollback()
        raise ApiError(409, "秒杀未在进行中")
    taken = session.execute(
        update(Sale)
        .where(Sale.id == sale.id, Sale.remaining_stock > 0)
        .values(remaining_stock=Sale.remaining_stock - 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not taken:
        session.rollback()
        raise ApiError(409, "已售罄")
    try:
        session.execute(
            insert(Order),
            [
                {
                    "ticket": request.headers.get("X-Request-Id") or f"sync-{sale.id}-{user_id}",
                    "user_id": user_id,
                    "course_id": course_id,
                    "sale_id": sale.id,
                    "price": sale.price,
                    "state": Order.CREATED,
                    "created_at": now,
                }
            ],
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, "您已经抢购过该课程") from None
    return ok("抢购成功", success="1")
