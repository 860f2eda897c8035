"""Serves files uploaded through the admin from ``UPLOAD_DIR`` (``instance/uploads``)."""

from flask import Blueprint, current_app, send_from_directory

bp = Blueprint("media", __name__)


@bp.get("/uploads/<path:filename>")
def uploaded_file(filename):
    return send_from_directory(current_app.config["UPLOAD_DIR"], filename, max_age=3600)
