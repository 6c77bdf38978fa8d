"""Where evalkit's own files are: a source checkout or an installed wheel, and the fixtures folder.

The suites (``suites/*.yaml``) and the notebook (``notebooks/explore_run.ipynb``) have one source of
truth: the top-level folders of the checkout. The package reaches them through two symbolic links,
``evalkit/suites -> ../suites`` and ``evalkit/notebooks -> ../notebooks``, which setuptools follows when it
builds a wheel (``[tool.setuptools.package-data]``), so an installed wheel holds real copies and an
editable install reads the checkout's files; nothing has to be kept in sync by hand.

The fixtures are built on first use: into ``data/fixtures/`` of a source checkout (the suites there refer to
``../data/fixtures/...``), elsewhere into ``platformdirs.user_cache_dir("evalkit")/fixtures``; the
environment variable ``EVALKIT_FIXTURES`` chooses another folder in both cases.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from evalkit.files import write_text_atomic

PACKAGE_DIR = Path(__file__).resolve().parent
FIXTURES_ENV = "EVALKIT_FIXTURES"
SUITE_FIXTURES_PREFIX = "../data/fixtures/"  # how the shipped suites name a fixture file
DEMO_COPY = "demo.yaml"  # the demo suite written into a fixtures folder outside the checkout


def source_checkout() -> Path | None:
    """The checkout evalkit runs from (its pyproject.toml, suites/ and evalkit/ side by side), or None."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "suites").is_dir() and (root / "evalkit").is_dir():
        return root
    return None


def shipped(relative: str) -> Path:
    """A file evalkit ships, e.g. ``suites/demo.yaml``: the checkout's own, else the installed package's copy."""
    root = source_checkout()
    path = (root / relative) if root is not None else PACKAGE_DIR / relative
    if not path.is_file():
        from evalkit.errors import UserError

        raise UserError(f"{path}: evalkit's own {relative} is missing (a broken install?); reinstall evalkit "
                        "(`pip install --force-reinstall evalkit`)")
    return path


def default_fixtures_dir() -> Path:
    """$EVALKIT_FIXTURES, else data/fixtures of the checkout, else the user's cache folder."""
    if os.environ.get(FIXTURES_ENV):
        return Path(os.environ[FIXTURES_ENV]).expanduser().resolve()
    root = source_checkout()
    if root is not None:
        return root / "data" / "fixtures"
    import platformdirs

    return Path(platformdirs.user_cache_dir("evalkit")) / "fixtures"


def demo_suite_for(fixtures: Path, models: list[str] | None = None) -> Path:
    """The demo suite whose fixture paths point into ``fixtures``, with only ``models`` when given.

    In a checkout with the default fixtures folder and every model that is ``suites/demo.yaml`` itself (its
    paths are relative to it). Otherwise a copy is written into the fixtures folder (``fixtures/demo.yaml``)
    with every ``../data/fixtures/...`` path made absolute, no ``output_dir`` (where the run goes is the
    caller's choice) and only the models asked for, in the suite's order. A name the demo does not have is a
    UserError that lists the names it has.
    """
    source = shipped("suites/demo.yaml")
    root = source_checkout()
    fixtures = Path(fixtures).resolve()
    if models is None and root is not None and fixtures == (root / "data" / "fixtures").resolve():
        return source
    data = yaml.safe_load(source.read_text())
    data.pop("output_dir", None)
    header = (f"# evalkit's demo suite ({source}), written by `evalkit demo` with its fixture paths pointing\n"
              f"# into {fixtures}. Rewritten on every `evalkit demo`: copy it elsewhere to edit it.\n")
    if models is not None:
        names = [m["name"] for m in data["models"]]
        unknown = [m for m in models if m not in names]
        if unknown or not models:
            from evalkit.errors import UserError

            raise UserError(f"--models {','.join(models)}: the demo has no model {', '.join(unknown) or '(none named)'}; "
                            f"its models are {','.join(names)}")
        data["models"] = [m for m in data["models"] if m["name"] in models]
        header += f"# Only the models asked for (`evalkit demo --models {','.join(models)}`).\n"
    copy = fixtures / DEMO_COPY
    return write_text_atomic(copy, header + yaml.safe_dump(_point_into(data, fixtures), sort_keys=False))


def _point_into(value, fixtures: Path):
    """``value`` with every string ``../data/fixtures/X`` replaced by the absolute ``fixtures/X``."""
    if isinstance(value, str) and value.startswith(SUITE_FIXTURES_PREFIX):
        return str(fixtures / value.removeprefix(SUITE_FIXTURES_PREFIX))
    if isinstance(value, dict):
        return {k: _point_into(v, fixtures) for k, v in value.items()}
    if isinstance(value, list):
        return [_point_into(v, fixtures) for v in value]
    return value
