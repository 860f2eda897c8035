"""Alert tasks: the summary mail that follows a throttled burst of alerts."""

from celery import shared_task


@shared_task(name="tasks.alerts.send_alert_summary", ignore_result=True, alert_on_failure=False)
def send_alert_summary(throttle_key):
    """Mail how many alerts for ``throttle_key`` were held back during the window that closed."""
    from luffy.alerts import send_alert_summary as summarize

    return summarize(throttle_key)
