"""The admin site at ``/admin/``, for admin users only; built anew for every app.

A Flask-Admin ``Admin`` and its views hold per-app state (blueprints, URLs), so a module-level
one would be shared by every app the factory builds (the tests build many).
Each feature owns its views in its own ``admin.py`` with an ``add_views(admin)``; this package
holds the base views and their access rules (security.py), the admin's time handling
(times.py) and ``init_admin``.
"""

from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from luffy.admin.home import AdminHomeView


def init_admin(app):
    from luffy.auth import admin as auth_admin
    from luffy.beat import admin as beat_admin
    from luffy.dashboard import admin as dashboard_admin
    from luffy.home import admin as home_admin
    from luffy.jobs import admin as jobs_admin
    from luffy.seckill import admin as seckill_admin

    admin = Admin(
        app,
        name="路飞学城后台",
        index_view=AdminHomeView(name="首页", url="/admin"),
        theme=Bootstrap4Theme(swatch="default", base_template="admin/luffy_base.html", fluid=True),
    )
    # The menu keeps this order.
    home_admin.add_views(admin)
    auth_admin.add_views(admin)
    beat_admin.add_views(admin)
    seckill_admin.add_views(admin)
    dashboard_admin.add_views(admin)
    jobs_admin.add_views(admin)
    app.extensions["luffy_admin"] = admin
    return admin
