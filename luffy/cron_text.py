"""Crontab expressions in Chinese words: "每 5 分钟, 在 09:00 和 18:59 之间, 周一到周五".

cron-descriptor translates its phrases (locale zh_CN) but takes day and month names from the
process's C locale ("Monday", "January"); this descriptor names them in Chinese without
touching the process locale.
"""

import calendar

from cron_descriptor import ExpressionDescriptor, Options

# By cron's number: 0 is Sunday.
DAY_NAMES = ("周日", "周一", "周二", "周三", "周四", "周五", "周六")


class ChineseDescriptor(ExpressionDescriptor):
    def get_month_description(self):
        return self.get_segment_description(
            self._expression_parts[4],
            "",
            lambda s: f"{int(s)}月",
            lambda s: self.translate(", every {0} months").format(s),
            lambda _: (
                self.translate(", month {0} through month {1}")
                or self.translate(", {0} through {1}")
            ),
            lambda _: self.translate(", only in {0}"),
            lambda _: (
                self.translate(", month {0} through month {1}")
                or self.translate(", {0} through {1}")
            ),
        )

    def get_description(self, *args, **kwargs):
        # The day names come from ``calendar.day_name`` (called by class name, so they cannot be
        # overridden): swap them for Chinese ones. Chinese puts no spaces around 到 and 和.
        text = super().get_description(*args, **kwargs)
        for index, chinese in enumerate(DAY_NAMES):
            text = text.replace(calendar.day_name[(index - 1) % 7], chinese)
        for name in (*DAY_NAMES, "月"):
            text = text.replace(f"{name} 到 ", f"{name}到").replace(f"{name} 和 ", f"{name}和")
        return text


def describe(expression):
    """``expression`` ("*/5 9-18 * * 1-5") in Chinese words; the expression itself if it cannot."""
    options = Options()
    options.locale_code = "zh_CN"
    options.use_24hour_time_format = True
    try:
        return ChineseDescriptor(expression, options).get_description()
    except Exception:  # cron-descriptor raises its own types for what Celery accepts
        return expression
