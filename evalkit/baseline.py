"""Baselines: a small exported record of a run (run.json, summary.csv, frames.csv; no videos)
that a team commits to its own repository and gates later runs against."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from evalkit.errors import UserError
from evalkit.record import RUN_RECORD, load_run

BASELINE_FILES = (RUN_RECORD, "summary.csv", "frames.csv", "parity.csv")
DEFAULT_DIR = Path("baselines")


def set_baseline(run_dir: Path, name: str | None = None, folder: Path = DEFAULT_DIR) -> Path:
    """Copy the run's record and tables to ``folder/name`` (default name: the suite's); returns that folder."""
    record = load_run(run_dir)
    name = name or record["suite"]["name"]
    dest = Path(folder) / name
    tmp = Path(folder) / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file in BASELINE_FILES:
        if (Path(run_dir) / file).is_file():
            shutil.copy2(Path(run_dir) / file, tmp / file)
    (tmp / "BASELINE").write_text(f"evalkit baseline '{name}' from run {record['run_id']} "
                                  f"({record['created_utc']}, suite {record['suite']['name']})\n")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def resolve_baseline(value: str, suite_file: Path) -> Path:
    """A baseline folder from a suite's ``baseline:``: a path (relative to the suite file), or a name in ./baselines."""
    candidates = [suite_file.parent / value, DEFAULT_DIR / value, Path(value)]
    for path in candidates:
        if (path / RUN_RECORD).is_file():
            return path.resolve()
    raise UserError(f"{suite_file}: baseline: {value!r} not found (looked in {', '.join(str(c) for c in candidates)}); "
                    f"make one with `evalkit baseline set RUN_DIR --name {Path(value).name}`")


def load_baseline(value: str, suite_file: Path) -> dict:
    return json.loads((resolve_baseline(value, suite_file) / RUN_RECORD).read_text())
