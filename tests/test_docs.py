"""The documentation stays true to the code: every setting documented, a short README."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_READERS = {"env", "env_int", "env_float", "env_bool", "env_list"}


def variables_read_by_config():
    """Names passed to config.py's env helpers (and os.environ lookups), found by parsing it."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / "config.py").read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        func = node.func
        reads_env = (isinstance(func, ast.Name) and func.id in ENV_READERS) or (
            isinstance(func, ast.Attribute) and func.attr in {"get", "getenv"}
        )
        if reads_env:
            names.add(first.value)
    return names


def test_config_reads_variables():
    # Guards the parser above: an empty set would make the next test pass vacuously.
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"} <= (
        variables_read_by_config()
    )


def test_every_variable_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in variables_read_by_config() if f"`{name}`" not in documented)
    assert missing == []


def test_readme_is_short_and_names_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 10 * 1024
    assert "make run" in readme and "make test" in readme


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = [part.split(")")[0] for part in readme.split("](")[1:]]
    missing = [target for target in targets if not (ROOT / target.split("#")[0]).exists()]
    assert targets and missing == []
