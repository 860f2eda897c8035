"""The tasks bench/tasks.py runs through Luffy's worker (loaded with CELERY_EXTRA_IMPORTS)."""

from celery import shared_task


@shared_task(name="bench.luffy.noop", ignore_result=True)
def noop():
    """Does nothing, inside Luffy's task class (app context, alert hooks)."""


@shared_task(name="bench.luffy.echo")
def echo(value):
    return value
