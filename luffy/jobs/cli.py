"""``flask jobs info|enqueue|requeue|cancel|empty``: the jobs from a terminal, like ``rq``."""

import json
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup

from luffy.broker import BrokerUnavailable
from luffy.jobs import broker_queues, registries
from luffy.jobs.api import Queue
from luffy.jobs.errors import JobError
from luffy.jobs.job import Job
from luffy.jobs.workers import workers

jobs_cli = AppGroup("jobs", help="Jobs (RQ style) on the Celery queues.")

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text):
    """ "30s", "5m", "2h", "1d" or plain seconds -> timedelta (never negative)."""
    match = DURATION.match(text or "")
    if not match:
        raise click.BadParameter(
            f"{text!r} is not a delay: write 30s, 5m, 2h, 1d or seconds (never negative)",
            param_hint="--in",
        )
    return timedelta(seconds=float(match.group(1)) * UNIT_SECONDS[match.group(2)])


def parse_moment(text):
    """An ISO date-time; without an offset it is the site's TIMEZONE."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date-time such as 2026-12-01T09:30:00+08:00",
            param_hint="--at",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
    return moment


def parse_args(values):
    """Each argument is JSON: 2, 3.5, "text", [1, 2], {"a": 1}."""
    parsed = []
    for position, value in enumerate(values, start=1):
        try:
            parsed.append(json.loads(value))
        except ValueError:
            raise click.BadParameter(
                f"argument {position} ({value!r}) is not JSON; quote text: '\"{value}\"'",
                param_hint="ARGS",
            ) from None
    return parsed


def fail(message):
    raise click.ClickException(message)


def print_info():
    queues = registries.overview()
    click.echo(
        f"{'queue':12} {'queued':>7} " + " ".join(f"{r:>9}" for r in registries.REGISTRIES[1:])
    )
    for queue in queues:
        counts = queue["counts"]
        click.echo(
            f"{queue['name']:12} {counts['queued']:>7} "
            + " ".join(f"{counts[r]:>9}" for r in registries.REGISTRIES[1:])
        )
    found, error = workers()
    click.echo(f"{len(found)} worker(s)" + (f" ({error})" if error else ""))
    for worker in found:
        click.echo(f"{worker['name']} {worker['state']}: {', '.join(worker['queues'])}")
    click.echo(f"Updated: {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}")


@jobs_cli.command("info")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Refresh every N seconds until Ctrl-C.",
)
def info(interval):
    """Queues with their lengths, registries with counts, workers with their queues."""
    while True:
        print_info()
        if interval is None:
            return
        time.sleep(interval)
        click.clear()


@jobs_cli.command("enqueue")
@click.argument("function")
@click.argument("args", nargs=-1)
@click.option("--in", "delay", help="Run after this delay: 30s, 5m, 2h, 1d.")
@click.option("--at", "at", help="Run at this ISO date-time (site time zone without offset).")
@click.option("--queue", default=None, help="The queue (default: the task's route).")
@click.option("--kwargs", "kwargs_json", default=None, help="Keyword arguments as a JSON object.")
def enqueue_command(function, args, delay, at, queue, kwargs_json):
    """Queue FUNCTION (e.g. tasks.user.add) with JSON ARGS (e.g. 2 3)."""
    if delay and at:
        raise click.UsageError("give --in or --at, not both")
    if queue is not None and queue not in registries.queue_names():
        raise click.BadParameter(
            f"no queue {queue!r}; queues: {', '.join(registries.queue_names())}",
            param_hint="--queue",
        )
    values = parse_args(args)
    kwargs = {}
    if kwargs_json:
        try:
            kwargs = json.loads(kwargs_json)
        except ValueError:
            kwargs = None
        if not isinstance(kwargs, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--kwargs")
    target = Queue(queue)
    try:
        if delay:
            job = target.enqueue_in(parse_duration(delay), function, *values, kwargs=kwargs)
        elif at:
            job = target.enqueue_at(parse_moment(at), function, *values, kwargs=kwargs)
        else:
            job = target.enqueue(function, *values, kwargs=kwargs)
    except JobError as error:
        fail(str(error))
    click.echo(f"Enqueued {job.id} ({job.get_status()}) on {job.origin}")


@jobs_cli.command("requeue")
@click.option("--failed", is_flag=True, required=True, help="Requeue the failed jobs.")
@click.option("--queue", default=None, help="Only this queue (default: every queue).")
def requeue(failed, queue):
    """Run the failed jobs again with their arguments."""
    names = [queue] if queue else registries.queue_names()
    count = 0
    for name in names:
        for job_id in registries.ids_in(name, registries.FAILED):
            try:
                Job(job_id).requeue()
                count += 1
            except JobError as error:
                click.echo(f"skipped {job_id}: {error}", err=True)
    click.echo(f"Requeued {count} failed job(s).")


@jobs_cli.command("cancel")
@click.argument("job_id")
def cancel(job_id):
    """Cancel a queued, scheduled or deferred job."""
    try:
        Job.fetch(job_id).cancel()
    except JobError as error:
        fail(str(error))
    except BrokerUnavailable as error:
        fail(f"the broker is unavailable: {error}")
    click.echo(f"Canceled {job_id}.")


@jobs_cli.command("empty")
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def empty(queue, yes):
    """Remove every message waiting in QUEUE."""
    if not broker_queues.known(queue):
        fail(f"no queue {queue!r}; queues: {', '.join(registries.queue_names())}")
    waiting = broker_queues.lengths([queue])[queue]["messages"]
    if not yes:
        click.confirm(f"Remove the {waiting} message(s) waiting in {queue}?", abort=True)
    removed = broker_queues.empty(queue)
    click.echo(f"Removed {removed} message(s) from {queue}.")
