"""SQL files shipped inside Tailor's packages, read as text: `<package>/sql/<name>.sql`.

Shared below everything (the warehouse's and the features' queries). Reads package data;
writes nothing.
"""

from __future__ import annotations

from importlib import resources


def load_sql(package: str, name: str) -> str:
    """The text of `sql/<name>.sql` shipped with `package`.

    Args:
        package: the package the file ships with, e.g. `tailor.warehouse`.
        name: the file's name without `.sql`, e.g. `sessions`.

    Returns:
        The file's text (UTF-8), placeholders such as `{session_gap_minutes}` left as they are.
    """
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text("utf-8")
