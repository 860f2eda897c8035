"""Serves files uploaded through the admin from ``UPLOAD_DIR`` (``instance/uploads``)."""

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("media", __name__)


@bp.get("/uploads/<path:filename>")
def uploaded_file(filename):
    response = send_from_directory(current_app.config["UPLOAD_DIR"], filename, max_age=3600)
    # Served as the type of its extension and never sniffed as anything else (a page).
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
