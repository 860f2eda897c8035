"""Database models; importing this package registers every table with SQLAlchemy."""

from luffy.models.banner import Banner
from luffy.models.course import Course
from luffy.models.user import User

__all__ = ["Banner", "Course", "User"]
