"""How task results read in the admin: states as coloured Chinese badges, arguments as text."""

import json

from celery import states
from markupsafe import Markup

STATE_LABELS = {
    states.PENDING: "等待中",
    states.RECEIVED: "已接收",
    states.STARTED: "执行中",
    states.RETRY: "重试中",
    states.SUCCESS: "成功",
    states.FAILURE: "失败",
    states.REVOKED: "已撤销",
    states.REJECTED: "已拒绝",
    states.IGNORED: "已忽略",
}


ID_SHOWN = 8


def state_badge(view, context, model, name):
    state = getattr(model, name) or ""
    return Markup('<span class="state-badge state-{0}" title="{0}">{1}</span>').format(
        state, STATE_LABELS.get(state, state)
    )


def readable_json(text):
    """Stored JSON as a person reads it: "['秒杀', 3]" not '["\\u79d2\\u6740", 3]'."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except (TypeError, ValueError):
        return text or ""


def clip(text):
    """One line, cut by the stylesheet with an ellipsis; the whole text on hover and in details."""
    return Markup('<span class="cell-clip" title="{0}">{0}</span>').format(text)


def args_formatter(view, context, model, name):
    return clip(readable_json(getattr(model, name)))


def clipped(view, context, model, name):
    return clip(getattr(model, name) or "")


def short_id(view, context, model, name):
    """The first characters of an id, enough to tell rows apart; the whole id on hover."""
    value = getattr(model, name) or ""
    return Markup('<code title="{0}">{1}</code>').format(value, value[:ID_SHOWN])


def args_detail(view, context, model, name):
    return readable_json(getattr(model, name))
