"""Home-page tasks."""

from celery import shared_task


@shared_task(name="tasks.home.update_banner")
def update_banner():
    """Rebuild the banner cache from the database (run by beat as the periodic refresh)."""
    from luffy.home.banners import rebuild_banner_cache

    banners = rebuild_banner_cache()
    return None if banners is None else len(banners)
