"""What the commands share: how much they say (-q / -v), their lines on stderr, the argument types and
helpers more than one command uses, and the one place that decides exit code 3 for a failed combination."""

from __future__ import annotations

import sys
from pathlib import Path

from evalkit.errors import UserError

QUIET, NORMAL, VERBOSE = -1, 0, 1
EXECUTOR_CHOICES = ("local", "ray")  # executors.EXECUTORS, without importing the run machinery for --help
verbosity = NORMAL  # set by the global -q / -v flags (cli.main)


def stderr(message: str) -> None:
    """A line on stderr, always (errors, and results sent to stderr)."""
    print(message, file=sys.stderr, flush=True)


def progress(message: str) -> None:
    """A progress line on stderr, unless -q."""
    if verbosity >= NORMAL:
        stderr(message)


def debug(message: str) -> None:
    """A debug line on stderr, only with -v."""
    if verbosity >= VERBOSE:
        stderr(f"evalkit: debug: {message}")


def names(text: str) -> list[str]:
    """A comma-separated list of names (argparse type): 'a, b' -> ['a', 'b']."""
    return [name.strip() for name in text.split(",") if name.strip()]


def contract_from_file(path: str | None):
    """The reference contract with the overrides of a YAML mapping (a suite's ``contract:`` block), if given."""
    import yaml
    from pydantic import ValidationError

    from evalkit.config.contract import Contract
    from evalkit.config.suite import describe_validation_error

    if path is None:
        return Contract()
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--contract {file}: file not found (expected a YAML mapping of contract fields, e.g. "
                        "image_input: face)")
    try:
        data = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"--contract {file}: not YAML ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(data, dict):
        raise UserError(f"--contract {file}: expected a mapping of contract fields (as a suite's contract: block)")
    try:
        return Contract().with_overrides(data)
    except ValidationError as exc:
        raise UserError(f"--contract {file}: {describe_validation_error(exc)}") from None


def failure_line(entry: dict) -> str:
    """stderr's line for a combination that failed."""
    return (f"evalkit: error: {entry['model']}/{entry['backend']}/{entry['input']}/{entry['protocol']} failed: "
            f"{entry['reason']}")


def failures(record) -> tuple[list[dict], bool]:
    """The record's failed combinations (as dicts), each with ``bug`` set (it failed because of a bug in evalkit,
    not because of its input or its backend), and whether any did: the one place that decides exit code 3."""
    from evalkit.matrix.jobs import INTERNAL, failure_kind

    failed = [dict(e.model_dump(mode="json"), bug=failure_kind(e) == INTERNAL) for e in record.runs
              if e.status == "failed"]
    return failed, any(e["bug"] for e in failed)
