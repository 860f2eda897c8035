"""Which functions may be enqueued: Celery tasks of the allowed packages, found by name.

``enqueue`` takes a task object (``from tasks.user import add``), a plain function defined in
a task module, or a dotted name (``"tasks.user.add"``). luffy/ never imports tasks/: a name is
looked up in the Celery app's task registry, after asking Celery to import the task modules
of its ``imports`` setting, as a worker does at start.
"""

from luffy.jobs.errors import JobError

NAME_LIMIT = 255


class UnknownFunction(JobError):
    """Not a task the workers know."""


class FunctionNotAllowed(JobError):
    """A function outside the packages jobs may run."""


def task_name_of(func):
    """The task name for a task object, a function or a dotted name."""
    if isinstance(func, str):
        return func.strip()
    name = getattr(func, "name", None)
    if isinstance(name, str) and name:
        return name  # a Celery task or its shared_task proxy
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if module and qualname:
        return f"{module}.{qualname}"
    raise UnknownFunction(f"{func!r} is not a function or a task name")


def allowed(name, packages):
    return any(name.startswith(package + ".") for package in packages)


def resolve(celery_app, func, packages):
    """The registered task name of ``func``; raises FunctionNotAllowed or UnknownFunction."""
    name = task_name_of(func)
    if name in celery_app.tasks and allowed(name, packages):
        return name  # the usual case, checked in two lookups
    if (
        not name
        or len(name) > NAME_LIMIT
        or not all(part.isidentifier() for part in name.split("."))
    ):
        raise UnknownFunction(f"{name!r} is not a dotted function name such as tasks.user.add")
    if not allowed(name, packages):
        raise FunctionNotAllowed(
            f"{name} is outside the packages jobs may run ({', '.join(packages)}): "
            "define it as a task in one of them"
        )
    if name not in celery_app.tasks:
        celery_app.loader.import_default_modules()
    if name not in celery_app.tasks:
        raise UnknownFunction(
            f"no task named {name}: define it with @shared_task(name={name!r}) in a module "
            "listed in Celery's imports"
        )
    return name
