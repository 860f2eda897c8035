"""What the admin page does to jobs, in words an operator reads (Chinese, like the admin).

Each action checks the job's status first and refuses a job in the wrong state with the
reason; the Job operations (luffy/jobs/job.py) guard again, in case the status moved.
"""

from luffy.broker import BrokerUnavailable
from luffy.jobs.errors import JobError, NoSuchJobError
from luffy.jobs.job import CANCELABLE, REQUEUEABLE, Job

STATUS_LABELS = {
    "queued": "排队中",
    "scheduled": "定时等待",
    "deferred": "等待依赖",
    "started": "运行中",
    "finished": "已完成",
    "failed": "失败",
    "canceled": "已取消",
    "stopped": "已停止",
}
DELETABLE = ("finished", "failed")
ACTIONS = {
    # action: (statuses it applies to, what is done, what the refused state allows)
    "requeue": (REQUEUEABLE, "已重新入队", "只有失败的任务可以重新入队"),
    "cancel": (CANCELABLE, "已取消", "只有排队中、定时等待或等待依赖的任务可以取消"),
    "delete": (DELETABLE, "已删除", "只有已完成或失败的任务可以删除"),
}
MAX_IDS = 500


def label(status):
    return STATUS_LABELS.get(status, status)


def _run(action, job):
    if action == "requeue":
        job.requeue()
    elif action == "cancel":
        job.cancel()
    else:
        job.delete()


def apply(action, job_ids, limit=MAX_IDS):
    """Apply ``action`` to each job (at most ``limit``): ``(done_ids, [reason, ...],
    broker_error or None)``."""
    allowed, _, rule = ACTIONS[action]
    done, refused = [], []
    for job_id in list(dict.fromkeys(job_ids))[:limit]:
        try:
            job = Job.fetch(job_id)
            status = job.get_status(refresh=False)
            if status not in allowed:
                refused.append(f"任务 {job_id} 的状态是「{label(status)}」：{rule}")
                continue
            _run(action, job)
        except NoSuchJobError:
            refused.append(f"任务 {job_id} 不存在（可能已过期或被删除）")
            continue
        except BrokerUnavailable as error:
            return done, refused, f"任务队列不可用：{error}"
        except JobError as error:  # the status moved between the check and the operation
            refused.append(f"任务 {job_id}：{error}")
            continue
        done.append(job_id)
    return done, refused, None
