"""Routes of the home feature."""

import logging

from flask import Blueprint, Response, current_app, render_template, send_from_directory
from sqlalchemy.exc import SQLAlchemyError

from luffy.courses.queries import all_courses
from luffy.home.banners import banner_cache
from luffy.sales.queries import open_sales

HOME_COURSES = 8
HOME_SALES = 4
log = logging.getLogger(__name__)

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    banners = banner_cache().banners()  # survives a database outage on its own (banners.py)
    try:
        courses, sales = all_courses(limit=HOME_COURSES), open_sales(limit=HOME_SALES)
    except SQLAlchemyError as error:  # the carousel still shows; the lists say they are away
        log.warning("Home page without courses and sales, database unavailable: %s", error)
        courses = sales = None
    return render_template("home/index.html", banners=banners, courses=courses, sales=sales)


@bp.get("/api/v1/home/banners/")
def banner_api():
    return Response(banner_cache().api_body(), mimetype="application/json")


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's): the same SVG."""
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )
