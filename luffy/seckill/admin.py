"""Admin views of the flash sale: sales (stock and window, loaded into Redis on save) and orders."""

from markupsafe import Markup
from redis.exceptions import RedisError
from sqlalchemy import func, inspect, select
from wtforms import SelectField
from wtforms.validators import InputRequired, NumberRange, ValidationError

from luffy.admin.security import SecureModelView
from luffy.extensions import db
from luffy.models import Order, Sale
from luffy.models.base import utcnow
from luffy.models.sale import as_utc
from luffy.seckill import sales


def saved_value(model, name):
    """The value of ``name`` before the form changed it."""
    history = inspect(model).attrs[name].history
    return history.deleted[0] if history.deleted else getattr(model, name)


class SaleView(SecureModelView):
    column_list = (
        "id",
        "course",
        "price",
        "total_stock",
        "remaining_stock",
        "start_at",
        "end_at",
        "state",
        "live",
    )
    column_default_sort = ("start_at", True)
    column_filters = ("state", "course_id")
    column_labels = {
        "course": "课程",
        "price": "秒杀价",
        "total_stock": "总库存",
        "remaining_stock": "剩余（数据库）",
        "start_at": "开始时间",
        "end_at": "结束时间",
        "state": "状态",
        "live": "实时（Redis）",
        "created_at": "创建时间",
        "updated_at": "更新时间",
    }
    form_columns = ("course", "price", "total_stock", "start_at", "end_at", "state")
    form_overrides = {"state": SelectField}
    form_args = {
        "state": {"choices": [(Sale.OPEN, "开放"), (Sale.CLOSED, "关闭")]},
        "total_stock": {
            "validators": [
                InputRequired(),
                NumberRange(min=1, max=1_000_000, message="库存须在 1 到 1000000 之间"),
            ]
        },
        "price": {"validators": [InputRequired(), NumberRange(min=0, message="价格不能为负数")]},
    }
    column_formatters = {
        "live": lambda view, context, model, name: view.live_figures(model),
    }

    def live_figures(self, sale):
        status = sales.sale_status(sale.id)
        if not status or status["stock_redis"] is None:
            return Markup("<em>未加载</em>")
        return f"剩余 {status['stock_redis']} · 已抢 {status['admitted']} · 排队 {status['queued']}"

    def on_model_change(self, form, model, is_created):
        super().on_model_change(form, model, is_created)  # typed local times become UTC first
        if model.start_at is None or model.end_at is None or model.end_at <= model.start_at:
            raise ValidationError("结束时间必须晚于开始时间")
        with db.session.no_autoflush:  # the checks query the table this half-made row goes into
            self.refuse_overlap(model)
            if is_created:
                model.remaining_stock = model.total_stock
            else:
                old_total = saved_value(model, "total_stock")
                if old_total != model.total_stock:
                    self.refuse_stock_change(model, old_total)
                    model.remaining_stock = model.total_stock

    def refuse_stock_change(self, sale, old_total):
        """Stock may change only before the sale starts and before anyone is admitted: then the
        database and Redis move together (Redis stock moves by the change of total on save)."""
        if as_utc(saved_value(sale, "start_at")) <= utcnow():
            raise ValidationError("活动已经开始，不能修改库存（可以关闭活动或新建一场）")
        orders = db.session.scalar(
            select(func.count()).select_from(Order).where(Order.sale_id == sale.id)
        )
        try:
            buyers = sales.buyers_in_redis(sale.id)
        except RedisError:
            raise ValidationError("Redis 不可用，暂时不能修改库存") from None
        if orders or buyers or sale.remaining_stock != old_total:
            raise ValidationError("已有用户抢购，不能再修改库存")

    def refuse_overlap(self, sale):
        course_id = sale.course.id if sale.course is not None else sale.course_id
        if sale.state != Sale.OPEN or course_id is None:
            return
        clash = db.session.scalar(
            select(Sale.id)
            .where(
                Sale.course_id == course_id,
                Sale.state == Sale.OPEN,
                Sale.id != (sale.id or 0),
                Sale.start_at < sale.end_at,
                Sale.end_at > sale.start_at,
            )
            .limit(1)
        )
        if clash:
            raise ValidationError(f"与同一课程的秒杀 #{clash} 时间重叠")

    def after_model_change(self, form, model, is_created):
        sales.warm_sale(model)

    def on_model_delete(self, model):
        if db.session.scalar(
            select(func.count()).select_from(Order).where(Order.sale_id == model.id)
        ):
            raise ValidationError("已有订单的秒杀不能删除（可以关闭它）")
        self._deleted = (model.id, model.course_id)

    def after_model_delete(self, model):
        sale_id, course_id = self._deleted
        sales.forget_sale(sale_id, course_id)


class OrderView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False
    column_list = ("id", "ticket", "user", "course", "sale_id", "price", "state", "created_at")
    column_default_sort = ("id", True)
    column_searchable_list = ("ticket",)
    column_filters = ("sale_id", "user_id", "state")
    column_labels = {
        "ticket": "抢购凭证",
        "user": "用户",
        "course": "课程",
        "sale_id": "秒杀",
        "price": "价格",
        "state": "状态",
        "created_at": "下单时间",
    }


def add_views(admin):
    admin.add_view(SaleView(Sale, db.session, name="秒杀活动", endpoint="sale", category="秒杀"))
    admin.add_view(OrderView(Order, db.session, name="秒杀订单", endpoint="order", category="秒杀"))
