"""The queued registry: messages waiting in the broker, counted and read one page at a time.

On Redis a queue is a list (kombu pushes on the left, workers pop from the right), so the
next messages to run are the list's tail: a page is one LRANGE, whatever the length. On
RabbitMQ a queue cannot be read without taking its messages: a passive declare gives the
count, and a page is listed only through the management API when
``JOBS_RABBITMQ_MANAGEMENT_URL`` is set (its "get" requeues what it shows).
"""

import base64
import json
import urllib.request
import uuid
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from flask import current_app
from kombu import Consumer
from kombu import Queue as KombuQueue

from luffy.dashboard.live import queue_lengths
from luffy.jobs import records

NOT_LISTED = (
    "RabbitMQ 的队列无法在不取走消息的情况下读取：这里只显示数量"
    "（设置 JOBS_RABBITMQ_MANAGEMENT_URL 后通过管理 API 列出）"
)
MANAGEMENT_NOTE = "通过 RabbitMQ 管理 API 读取（被查看的消息会重新入队，顺序可能改变）"
MANAGEMENT_LIMIT = 500
# kombu's Redis transport keeps messages with a priority in "<queue>\x06\x16<priority>".
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
EMPTY_CHUNK = 1000


def celery_app():
    return current_app.extensions["celery"]


def lengths(names):
    """{queue: {"messages", "consumers"}} from the broker (a passive declare per queue)."""
    return queue_lengths(names)


def known(queue):
    """A queue Celery is configured with, or one holding messages (sent with queue=...)."""
    configured = [q.name for q in celery_app().conf.task_queues or ()]
    return queue in configured or lengths([queue])[queue]["messages"] > 0


def _decode(raw):
    """A kombu Redis message (JSON envelope) as the list's entry; args from the body."""
    message = json.loads(raw)
    headers = message.get("headers") or {}
    properties = message.get("properties") or {}
    body = message.get("body") or ""
    if properties.get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return _entry(headers, body, message.get("content-type"))


def _entry(headers, body, content_type):
    args_text = f"{headers.get('argsrepr') or ''} {headers.get('kwargsrepr') or ''}".strip()
    if content_type == "application/json":
        try:
            args, kwargs, _ = json.loads(body)
            parts = [json.dumps(a, ensure_ascii=False, default=str) for a in args]
            parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in kwargs.items()]
            args_text = ", ".join(parts)
        except (ValueError, TypeError):
            pass
    options = headers.get("luffy_job") or {}
    eta = records.parse_eta(headers.get("eta"))
    return {
        "id": headers.get("id") or "",
        "func": headers.get("task") or "",
        "args": args_text[:300],
        "status": "scheduled" if eta and eta > datetime.now(UTC) else "queued",
        "description": options.get("description", "") if isinstance(options, dict) else "",
        "enqueued_at": None,
        "started_at": None,
        "ended_at": None,
        "eta": eta,
        "worker": "",
        "result": "",
        "exc": "",
        "depends_on": [],
    }


def _with_enqueue_times(jobs):
    pipe = records.redis_client().pipeline(transaction=False)
    for job in jobs:
        pipe.hget(records.JOB_KEY.format(job["id"]), "enqueued_at")
    for job, stamp in zip(jobs, pipe.execute(), strict=True):
        if stamp:
            job["enqueued_at"] = datetime.fromtimestamp(float(stamp), UTC)
    return jobs


def waiting(queue, offset, limit):
    """(total, one page of entries, a note or None): the next messages to run first."""
    with celery_app().connection_for_read() as connection:
        timeout = current_app.config["MONITOR_INSPECT_TIMEOUT"]
        connection.ensure_connection(max_retries=0, timeout=timeout)
        if connection.transport.driver_type == "redis":
            client = connection.default_channel.client
            pipe = client.pipeline(transaction=False)
            pipe.llen(queue)
            pipe.lrange(queue, -(offset + limit), -(offset + 1))
            total, raw = pipe.execute()
            if offset >= total:
                raw = []
            elif offset + limit > total:  # LRANGE clamps: keep only the unseen part
                raw = raw[: total - offset]
            jobs = [_decode(item) for item in reversed(raw)]
            return total, _with_enqueue_times(jobs), None
        total = lengths([queue])[queue]["messages"]
        url = current_app.config.get("JOBS_RABBITMQ_MANAGEMENT_URL")
        if not url:
            return total, [], NOT_LISTED
        vhost = connection.virtual_host or "/"
    jobs = _management_page(url, vhost, queue, offset, limit)
    return total, _with_enqueue_times(jobs), MANAGEMENT_NOTE


def _management_page(url, vhost, queue, offset, limit):
    """One page through RabbitMQ's management API (the first MANAGEMENT_LIMIT messages)."""
    count = min(MANAGEMENT_LIMIT, offset + limit)
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path.rstrip('/')}"
    request = urllib.request.Request(
        f"{base}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/get",
        data=json.dumps(
            {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000}
        ).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    token = base64.b64encode(f"{parts.username or ''}:{parts.password or ''}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=3) as answer:
        messages = json.loads(answer.read())
    jobs = []
    for message in messages[offset : offset + limit]:
        properties = message.get("properties") or {}
        jobs.append(
            _entry(
                properties.get("headers") or {},
                message.get("payload") or "",
                properties.get("content_type"),
            )
        )
    return jobs


def empty(queue):
    """Remove every message waiting in ``queue``; returns how many went, and each removed
    job's record says canceled. On Redis the list is renamed away first (atomic); on RabbitMQ
    the messages are taken (a consumer without acks) to learn their ids."""
    with celery_app().connection_for_write() as connection:
        if connection.transport.driver_type != "redis":
            ids = _take_all(connection, queue)
            _mark_canceled(ids)
            return len(ids)
        client = connection.default_channel.client
        removed = 0
        names = [queue] + [f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
        for name in names:
            aside = f"luffy:jobs:emptied:{uuid.uuid4().hex}"
            try:
                client.rename(name, aside)
            except Exception as error:  # no such list: nothing waits there
                if "no such key" in str(error).lower():
                    continue
                raise
            total = client.llen(aside)
            for start in range(0, total, EMPTY_CHUNK):
                chunk = client.lrange(aside, start, start + EMPTY_CHUNK - 1)
                _mark_canceled((json.loads(raw).get("headers") or {}).get("id") for raw in chunk)
            client.delete(aside)
            removed += total
    return removed


def _take_all(connection, queue, idle_seconds=0.5):
    """Consume (without acks) every message of an AMQP queue; returns their job ids."""
    ids = []
    consumer = Consumer(
        connection,
        queues=[KombuQueue(queue, no_declare=True)],
        on_message=lambda message: ids.append((message.headers or {}).get("id")),
        no_ack=True,
    )
    with consumer:
        while True:
            try:
                connection.drain_events(timeout=idle_seconds)
            except TimeoutError:
                break
    return ids


def _mark_canceled(ids):
    redis = records.redis_client()
    ttl = records.record_ttl()
    pipe = redis.pipeline(transaction=False)
    for count, job_id in enumerate(ids, start=1):
        if not job_id:
            continue
        record = records.JOB_KEY.format(job_id)
        pipe.hset(record, mapping={"status": "canceled", "reason": "queue emptied"})
        pipe.expire(record, ttl)
        if count % EMPTY_CHUNK == 0:
            pipe.execute()
    pipe.execute()
