"""Flash sales ("秒杀") and the orders they create."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from luffy.extensions import db
from luffy.models.base import TimestampMixin, as_utc, utcnow


class Sale(TimestampMixin, db.Model):
    """A number of seats of one course sold at ``price`` inside a time window.

    ``remaining_stock`` is the database's own guard against overselling: a CHECK keeps it
    non-negative and every order decrements it with an UPDATE guarded by the stock it needs.
    Redis holds the fast admission gate (see luffy/seckill/admission.py), never the truth.
    """

    __tablename__ = "sales"
    __table_args__ = (
        CheckConstraint("remaining_stock >= 0", name="remaining_stock_not_negative"),
        CheckConstraint("remaining_stock <= total_stock", name="remaining_within_total"),
        CheckConstraint("end_at > start_at", name="window_not_empty"),
    )

    OPEN = "open"
    CLOSED = "closed"
    STATES = (OPEN, CLOSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    total_stock: Mapped[int] = mapped_column()
    remaining_stock: Mapped[int] = mapped_column()
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default=OPEN)

    course = relationship("Course", lazy="joined")

    def phase(self, now=None):
        """``closed``, ``upcoming``, ``running`` or ``ended`` at ``now`` (UTC)."""
        now = now or utcnow()
        if self.state != self.OPEN:
            return "closed"
        if now < as_utc(self.start_at):
            return "upcoming"
        if now >= as_utc(self.end_at):
            return "ended"
        return "running"

    def __str__(self):
        return f"#{self.id} {self.course.name if self.course else self.course_id}"


class Order(db.Model):
    """A seat bought in a sale; one per buyer and sale (UNIQUE), found by its ticket."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("sale_id", "user_id", name="uq_orders_sale_id_user_id"),)

    CREATED = "created"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The id the buyer was given when admitted (the "task_id" of the API).
    ticket: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    sale_id: Mapped[int] = mapped_column(ForeignKey("sales.id"))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    state: Mapped[str] = mapped_column(String(16), default=CREATED)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user = relationship("User", lazy="joined")
    course = relationship("Course", lazy="joined")
    sale = relationship("Sale")

    def __str__(self):
        return f"#{self.id}"
