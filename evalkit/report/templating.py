"""The one jinja2 environment of evalkit's pages (report, comparison, history, sign-off)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2


@lru_cache(maxsize=2)
def environment(strict: bool = True) -> jinja2.Environment:
    """Templates of ``evalkit/report/templates``, HTML autoescaped. ``strict``: an undefined name is an error
    (the run report and the comparison; the history and sign-off pages were written for jinja's lenient default)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("evalkit.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined if strict else jinja2.Undefined)
    env.filters["basename"] = lambda path: Path(str(path)).name  # a page names files, never a machine's paths
    return env


def render(template: str, strict: bool = True, **context) -> str:
    """``template`` (a file name under templates/) rendered with ``context``."""
    return environment(strict).get_template(template).render(**context)
