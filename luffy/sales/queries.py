"""Read-only sale figures for the storefront pages (home, course pages, the sale list).

The flash sale's Redis state belongs to luffy/seckill/; the only thing read from it here is
the seats left, through ``stock_left``, so the storefront never learns its key layout.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from luffy.extensions import db
from luffy.models import Sale
from luffy.models.base import as_utc, utcnow
from luffy.seckill.sales import stock_left

# What a visitor is told about a sale, by its state (see ``SaleCard.state``).
STATE_TEXT = {
    "upcoming": "即将开始",
    "running": "秒杀进行中",
    "soldout": "已售罄",
    "ended": "已结束",
    "closed": "已结束",
}


@dataclass
class SaleCard:
    """A sale as the storefront shows it: its row, the seats left and its visitor-facing state."""

    sale: Sale
    seats_left: int

    @property
    def state(self):
        """``upcoming``, ``running``, ``soldout``, ``ended`` or ``closed``."""
        phase = self.sale.phase()
        if phase in ("upcoming", "running") and self.seats_left <= 0:
            return "soldout"
        return phase

    @property
    def state_text(self):
        return STATE_TEXT[self.state]

    @property
    def buyable(self):
        return self.state == "running"

    def as_json(self):
        return {
            "sale_id": self.sale.id,
            "course_id": self.sale.course_id,
            "stock": self.seats_left,
            "total": self.sale.total_stock,
            "state": self.state,
            "state_text": self.state_text,
            "start": epoch_ms(self.sale.start_at),
            "end": epoch_ms(self.sale.end_at),
        }


def epoch_ms(moment: datetime):
    return int(as_utc(moment).timestamp() * 1000)


def card(sale):
    return SaleCard(sale, stock_left(sale))


def open_sales(limit=20, now=None):
    """Open sales running now or starting later, the soonest first."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(Sale)
        .where(Sale.state == Sale.OPEN, Sale.end_at > now)
        .order_by(Sale.start_at, Sale.id)
        .limit(limit)
    ).all()
    return [card(sale) for sale in rows]


def course_sale(course_id, now=None):
    """The course's sale a visitor should see: running, else the next one; or None."""
    now = now or utcnow()
    sale = db.session.scalar(
        select(Sale)
        .where(Sale.course_id == course_id, Sale.state == Sale.OPEN, Sale.end_at > now)
        .order_by(Sale.start_at, Sale.id)
        .limit(1)
    )
    return card(sale) if sale is not None else None


def latest_sale(course_id):
    """The course's most recent sale of any state (for a status answer after it ended)."""
    sale = db.session.scalar(
        select(Sale).where(Sale.course_id == course_id).order_by(Sale.start_at.desc()).limit(1)
    )
    return card(sale) if sale is not None else None
