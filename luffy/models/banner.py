"""Home-page carousel banners."""

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from luffy.extensions import db
from luffy.models.base import TimestampMixin


class Banner(TimestampMixin, db.Model):
    __tablename__ = "banners"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(64))
    # Empty until a file is uploaded or a path typed (the admin form wants one of the two).
    image: Mapped[str] = mapped_column(String(255), default="")
    link: Mapped[str] = mapped_column(String(255), default="")
    orders: Mapped[int] = mapped_column(default=0, index=True)
    is_show: Mapped[bool] = mapped_column(default=True)
    is_delete: Mapped[bool] = mapped_column(default=False)

    @classmethod
    def visible(cls, limit):
        """Banners shown and not deleted, in display order, at most ``limit``."""
        return (
            select(cls)
            .where(cls.is_show.is_(True), cls.is_delete.is_(False))
            .order_by(cls.orders, cls.id)
            .limit(limit)
        )

    def to_dict(self):
        return {
            "id": self.id,
            "title": self.title,
            "image": self.image,
            "link": self.link,
            "orders": self.orders,
        }

    def __str__(self):
        return self.title
