"""Routes of the home feature."""

from flask import Response, render_template

from luffy.home import bp
from luffy.home.banners import banner_cache


@bp.get("/")
def index():
    return render_template("home/index.html", banners=banner_cache().banners())


@bp.get("/api/v1/home/banners/")
def banner_api():
    return Response(banner_cache().api_body(), mimetype="application/json")
