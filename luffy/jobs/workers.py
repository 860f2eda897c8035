"""The workers, as ``rq info`` shows them: name, state and the queues each one consumes."""

import threading

from flask import current_app


def _inspect(app, method, timeout, box):
    try:
        with app.app_context():
            inspector = app.extensions["celery"].control.inspect(timeout=timeout)
            box[method] = getattr(inspector, method)() or {}
    except Exception as error:  # the broker is down: no workers to show, and why
        box["error"] = f"{type(error).__name__}: {error}"


def workers(timeout=None):
    """[{"name", "state", "queues", "active"}], asking every worker at once (bounded)."""
    timeout = timeout or current_app.config["MONITOR_INSPECT_TIMEOUT"]
    app = current_app._get_current_object()
    box = {}
    threads = [
        threading.Thread(target=_inspect, args=(app, method, timeout, box), daemon=True)
        for method in ("active_queues", "active")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 1)
    queues, active = box.get("active_queues") or {}, box.get("active") or {}
    found = []
    for name in sorted(set(queues) | set(active)):
        running = active.get(name) or []
        found.append(
            {
                "name": name,
                "state": "busy" if running else "idle",
                "queues": [queue.get("name") for queue in queues.get(name) or []],
                "active": [task.get("id") for task in running],
            }
        )
    return found, box.get("error")
