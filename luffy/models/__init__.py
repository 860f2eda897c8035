"""Database models; importing this package registers every table with SQLAlchemy."""

from luffy.models.banner import Banner
from luffy.models.course import Course
from luffy.models.sale import Order, Sale
from luffy.models.schedule import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    ScheduleChange,
    ScheduleVersion,
    SolarSchedule,
)
from luffy.models.task_result import TaskResult
from luffy.models.user import User

__all__ = [
    "Banner",
    "ClockedSchedule",
    "Course",
    "CrontabSchedule",
    "IntervalSchedule",
    "Order",
    "PeriodicTask",
    "Sale",
    "ScheduleChange",
    "ScheduleVersion",
    "SolarSchedule",
    "TaskResult",
    "User",
]
