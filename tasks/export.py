"""Export tasks: long jobs that report their progress (luffy/jobs/export.py)."""

from celery import shared_task


@shared_task(name="tasks.export.export_sale_orders")
def export_sale_orders(sale_id, chunk_size=500, pause=0.0):
    """Write flash sale ``sale_id``'s orders to a CSV file, reporting progress as it goes."""
    from luffy.jobs import get_current_job
    from luffy.jobs.export import write_sale_orders

    return write_sale_orders(sale_id, get_current_job(), chunk_size=chunk_size, pause=pause)
