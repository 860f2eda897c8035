"""Celery beat with its schedule in the database: models in ``luffy.models.schedule``, the
scheduler in ``scheduler``, change marking in ``changes``, the single-beat lock in ``lock``."""
