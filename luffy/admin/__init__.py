"""The admin site at ``/admin/``, for admin users only; built anew for every app (PITFALLS 11)."""

from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from luffy.admin.security import SecureAdminIndexView


def init_admin(app):
    from luffy.admin.schedules import add_views as add_schedule_views
    from luffy.admin.task_results import TaskResultView
    from luffy.admin.views import BannerView, CourseView, UserView
    from luffy.dashboard.views import DashboardView
    from luffy.extensions import db
    from luffy.models import Banner, Course, TaskResult, User
    from luffy.seckill.admin import add_views as add_seckill_views

    admin = Admin(
        app,
        name="路飞学城后台",
        index_view=SecureAdminIndexView(name="首页", url="/admin"),
        theme=Bootstrap4Theme(swatch="default"),
    )
    admin.add_view(BannerView(Banner, db.session, name="轮播图", endpoint="banner"))
    admin.add_view(CourseView(Course, db.session, name="课程", endpoint="course"))
    admin.add_view(UserView(User, db.session, name="用户", endpoint="user"))
    admin.add_view(TaskResultView(TaskResult, db.session, name="任务结果", endpoint="taskresult"))
    add_schedule_views(admin)
    add_seckill_views(admin)
    admin.add_view(DashboardView(name="任务监控", endpoint="monitor"))
    app.extensions["luffy_admin"] = admin
    return admin
