"""The admin's words: Flask-Admin's own Chinese (zh_Hans_CN, through Flask-Babel) with the few
terms Luffy words differently, and what every admin page template is given.

Flask-Babel merges a view's ``translations_path`` *under* Flask-Admin's catalog, so a catalog
of our own cannot replace one of its words; the template's ``_gettext`` can.
"""

from flask_admin import babel

from luffy.admin.times import utc_offset_minutes

# Flask-Admin's msgid -> Luffy's word (the rest is Flask-Admin's shipped translation).
WORDS = {
    "Create": "新建",
    "Create New Record": "新建记录",
    "With selected": "批量操作",
    "Add Filter": "添加筛选",
    "Reset Filters": "清除筛选",
    "Delete": "删除",
}


def gettext(string, **variables):
    if string in WORDS:
        return WORDS[string] % variables if variables else WORDS[string]
    return babel.gettext(string, **variables)


class AdminWords:
    """Mixed into every admin view: its templates get Luffy's words and the site's UTC offset."""

    def render(self, template, **kwargs):
        # Flask-Admin lets ``_template_args`` override what it passes to every template.
        self._template_args.update(_gettext=gettext, site_utc_offset_minutes=utc_offset_minutes)
        return super().render(template, **kwargs)
