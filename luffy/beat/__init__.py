"""Celery beat with its schedule in the database: models in ``luffy.models.schedule``, the
scheduler in ``scheduler``, change marking in ``changes``, the single-beat lock in ``lock``."""


def init_app(app):
    """Mark every schedule write for beat, and add the ``flask schedule`` commands."""
    from luffy.beat.changes import watch_schedule_writes
    from luffy.beat.cli import schedule_cli

    watch_schedule_writes()
    app.cli.add_command(schedule_cli)
