"""Celery beat with its schedule in the database.

Models in ``luffy.models.schedule``; ``scheduler`` (the Celery scheduler) over ``plan`` (the
heap of next runs), ``loader`` (the queries), ``entries`` (a row as beat sends it),
``bookkeeping`` (what beat writes back) and ``sending``; ``changes`` logs every schedule
write; ``lock`` keeps beat single; ``keys`` names its Redis keys; ``services``, ``cli``,
``schedule_input`` and ``admin`` are the faces people use.
"""


def init_app(app):
    """Mark every schedule write for beat, and add the ``flask schedule`` commands."""
    from luffy.beat.changes import watch_schedule_writes
    from luffy.beat.cli import schedule_cli

    watch_schedule_writes()
    app.cli.add_command(schedule_cli)
