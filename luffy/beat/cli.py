"""``flask schedule list|enable|disable|run``: the periodic tasks from a terminal."""

import click
from flask.cli import AppGroup
from sqlalchemy import select

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
        click.echo(
            f"{state} {task.name:32} {task.task:32} {task.schedule_row} "
            f"next={next_text} runs={task.total_run_count}"
        )
    status = beat_status()
    click.echo(
        f"beat lock holder: {status['holder'] or '-'}; last tick {status['seconds_since_tick']}s ago"
    )


@schedule_cli.command("enable")
@click.argument("name")
def enable(name):
    """Enable a periodic task (a running beat applies it within seconds)."""
    _task(name).enabled = True
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
    except BrokerUnavailable as error:
        raise click.ClickException(
            f"the broker is unavailable, {name} was not sent: {error}"
        ) from error
