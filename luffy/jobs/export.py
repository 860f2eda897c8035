"""Exporting a flash sale's orders to CSV: the long job that reports its progress.

The export runs as ``tasks.export.export_sale_orders``: it writes the file in chunks under
``JOBS_EXPORT_DIR``, saving ``meta["progress"] = {"done", "total"}`` after each chunk, so the
admin page's progress bar (``GET /api/v1/tasks/<id>/``) moves while it runs. A file is kept
for the job's ``result_ttl`` (``JOBS_EXPORT_TTL``); older ones go at the next export.
"""

import csv
import os
import time
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from luffy.admin.times import show
from luffy.extensions import db
from luffy.models import Order, Sale, User

TASK_NAME = "tasks.export.export_sale_orders"
HEADER = ["订单 ID", "票据", "用户", "课程", "价格", "状态", "下单时间"]


def export_dir():
    return Path(current_app.config["JOBS_EXPORT_DIR"])


def file_for(job_id):
    """The export file of job ``job_id`` (an id of letters, digits and '-' only)."""
    if not job_id or not all(c.isalnum() or c == "-" for c in job_id):
        raise ValueError("bad export id")
    return export_dir() / f"orders-{job_id}.csv"


def remove_expired(now=None):
    """Delete the export files older than JOBS_EXPORT_TTL."""
    folder = export_dir()
    if not folder.is_dir():
        return 0
    cutoff = (now or time.time()) - current_app.config["JOBS_EXPORT_TTL"]
    removed = 0
    for path in folder.glob("orders-*.csv"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _rows(sale_id, after_id, limit):
    return db.session.execute(
        select(Order.id, Order.ticket, User.username, Order.price, Order.state, Order.created_at)
        .join(User, User.id == Order.user_id)
        .where(Order.sale_id == sale_id, Order.id > after_id)
        .order_by(Order.id)
        .limit(limit)
    ).all()


def write_sale_orders(sale_id, job, chunk_size=500, pause=0.0):
    """Write sale ``sale_id``'s orders to the job's CSV file, reporting progress; returns
    ``{"file", "rows", "sale_id"}``."""
    sale = db.session.get(Sale, sale_id)
    if sale is None:
        raise ValueError(f"no flash sale #{sale_id}")
    course = sale.course.name if sale.course else str(sale.course_id)
    total = db.session.scalar(select(func.count()).where(Order.sale_id == sale_id))
    _progress(job, 0, total)
    path = file_for(job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    done, last_id = 0, 0
    # UTF-8 with a BOM, so spreadsheet programs read the Chinese text right.
    with partial.open("w", newline="", encoding="utf-8-sig") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        while rows := _rows(sale_id, last_id, chunk_size):
            for order_id, ticket, username, price, state, created_at in rows:
                writer.writerow(
                    [order_id, ticket, username, course, price, state, show(created_at)]
                )
            done += len(rows)
            last_id = rows[-1][0]
            out.flush()
            _progress(job, done, total)
            if pause:
                time.sleep(pause)
    os.replace(partial, path)
    remove_expired()
    return {"file": path.name, "rows": done, "sale_id": sale_id}


def _progress(job, done, total):
    if job is None:
        return
    job.meta["progress"] = {"done": done, "total": total}
    job.save_meta()
