"""``flask schedule list|add|remove|enable|disable|run``: the periodic tasks from a terminal.

Every command writes through the ORM, so a running beat applies it like an admin edit.
"""

import click
from flask.cli import AppGroup
from sqlalchemy import select

from luffy.beat.entries import BadRow
from luffy.beat.schedule_input import ScheduleInputError, periodic_task_from_options
from luffy.beat.services import beat_status, next_run_of, run_now
from luffy.broker import BrokerUnavailable
from luffy.extensions import db
from luffy.models.schedule import PeriodicTask

schedule_cli = AppGroup("schedule", help="Periodic tasks (the schedule beat runs).")


def _task(name):
    task = db.session.scalar(select(PeriodicTask).where(PeriodicTask.name == name))
    if task is None:
        raise click.BadParameter(f"no periodic task named {name!r}", param_hint="NAME")
    return task


@schedule_cli.command("list")
def list_tasks():
    """Every periodic task with its schedule and next run, then beat's status."""
    for task in db.session.scalars(select(PeriodicTask).order_by(PeriodicTask.name)).unique():
        state = "on " if task.enabled else "off"
        next_run = next_run_of(task)
        next_text = f"{next_run:%Y-%m-%d %H:%M:%S}Z" if next_run else "-"
        reason = f" ({task.disabled_reason})" if task.disabled_reason else ""
        click.echo(
            f"{state} {task.name:32} {task.task:32} {task.schedule_row} "
            f"next={next_text} runs={task.total_run_count}{reason}"
        )
    status = beat_status()
    holder, since = status["holder"] or "-", status["seconds_since_tick"]
    click.echo(f"beat lock holder: {holder}; last tick {since}s ago")


@schedule_cli.command("add")
@click.argument("name")
@click.argument("task_name", metavar="TASK")
@click.option("--every", help="an interval: 30s, 5m, 2h, 1d")
@click.option("--cron", help='a cron line: "*/5 9-18 * * 1-5" (minute hour day month weekday)')
@click.option("--tz", help="the crontab's time zone (default: TIMEZONE)")
@click.option(
    "--at", "at", help="once, at an ISO time (2030-01-02T03:04:05+08:00; naive: TIMEZONE)"
)
@click.option("--args", "args", default="[]", help="positional arguments, a JSON array")
@click.option("--kwargs", "kwargs", default="{}", help="keyword arguments, a JSON object")
@click.option("--queue", help="the queue to send to (default: the task's route)")
def add(name, task_name, **options):
    """Add periodic task NAME running TASK (a running beat applies it within seconds)."""
    if db.session.scalar(select(PeriodicTask.id).where(PeriodicTask.name == name)) is not None:
        raise click.BadParameter(
            f"a periodic task named {name!r} exists already", param_hint="NAME"
        )
    try:
        task = periodic_task_from_options(db.session, name, task_name, **options)
    except ScheduleInputError as error:
        raise click.UsageError(str(error)) from error
    db.session.add(task)
    db.session.commit()
    next_run = next_run_of(task)
    next_text = f"{next_run:%Y-%m-%d %H:%M:%S}Z" if next_run else "-"
    click.echo(f"{name} added: {task.task} {task.schedule_row}, next run {next_text}")


@schedule_cli.command("remove")
@click.argument("name")
def remove(name):
    """Delete periodic task NAME (a running beat stops sending it within seconds)."""
    db.session.delete(_task(name))
    db.session.commit()
    click.echo(f"{name} removed")


@schedule_cli.command("enable")
@click.argument("name")
def enable(name):
    """Enable a periodic task (a running beat applies it within seconds)."""
    task = _task(name)
    task.enabled, task.disabled_reason = True, None
    db.session.commit()
    click.echo(f"{name} enabled")


@schedule_cli.command("disable")
@click.argument("name")
def disable(name):
    """Disable a periodic task."""
    _task(name).enabled = False
    db.session.commit()
    click.echo(f"{name} disabled")


@schedule_cli.command("run")
@click.argument("name")
def run(name):
    """Send a periodic task's task now, without touching its schedule."""
    try:
        click.echo(f"{name} sent as {run_now(_task(name))}")
    except BadRow as error:
        raise click.ClickException(f"{name} cannot be sent as written: {error}") from error
    except BrokerUnavailable as error:
        raise click.ClickException(
            f"the broker is unavailable, {name} was not sent: {error}"
        ) from error
