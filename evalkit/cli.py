"""The ``evalkit`` command line: the parser made of the commands (``evalkit/commands/``, one module each), and
what becomes of what a command raises.

Exit codes: 0 success, 1 a check failed (a gate, or a required backend
missing, or a combination failed on bad input), 2 usage or input error (one
line saying what and where; a missing baseline too), 3 internal error (a bug in
evalkit: please report it with the traceback; also when a bug failed one
combination of a run, after the others ran). Ctrl-C: 130, SIGTERM: 143.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import json
import os
import signal
import sqlite3
import sys
import threading
import traceback
import warnings
import zipfile
from pathlib import Path

# One BLAS thread: evalkit's matrix work is small (mel filters, a PCA), and OpenBLAS's spinning threads fight
# ONNX Runtime's and the stage threads for the cores (a 300k-element dot took 12-30 ms instead of 1 on 2 cores).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from evalkit import __version__  # noqa: E402 (after the BLAS setting, before anything imports numpy)
from evalkit.commands import (baseline_set, common, compare, crop_boxes, demo, fixtures_build, history, init,
                              metrics_fidelity, metrics_field, metrics_sync, model_check, record_schema, report, run,
                              runs_partial, signoff, suite_check, suite_schema)
from evalkit.commands.common import NORMAL, QUIET, VERBOSE, stderr
from evalkit.errors import EXIT_INTERNAL, EXIT_USAGE, UserError
from evalkit.media.ffmpeg import FFMPEG_ENV

COMMANDS = (
    (None, demo), (None, run), (None, init), ("baseline", baseline_set), (None, compare),
    ("fixtures", fixtures_build), ("metrics", metrics_fidelity), ("metrics", metrics_sync), ("metrics", metrics_field),
    (None, history), (None, signoff), ("runs", runs_partial), (None, report), ("record", record_schema),
    ("suite", suite_schema), ("suite", suite_check), ("model", model_check), (None, crop_boxes),
)
"""(group, module) of every command, in the order of ``evalkit --help``: ``evalkit COMMAND`` or, in a group,
``evalkit GROUP ACTION``. Each module's ``add_parser(sub)`` declares it; its ``run(args)`` does it."""

GROUPS = {
    "baseline": dict(help="baselines for relative gates", dest="baseline_command", metavar="ACTION"),
    "fixtures": dict(help="evalkit's own test data", dest="fixtures_command", metavar="ACTION",
                     description="Fixtures evalkit builds itself, byte for byte the same on every build."),
    "metrics": dict(help="metrics on any videos, outside a suite", dest="metrics_command", metavar="METRIC"),
    "runs": dict(help="run folders: the unfinished ones", dest="runs_command", metavar="ACTION"),
    "record": dict(help="run records (run.json): schema", dest="record_command", metavar="ACTION"),
    "suite": dict(help="suite files: schema and validation", dest="suite_command", metavar="ACTION"),
    "model": dict(help="check an exported model against the contract", dest="model_command", metavar="ACTION"),
}
"""The commands that group actions: their help, and the name and metavar of their action argument."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalkit",
        description="Evaluate audio-driven lip-sync generators exported to ONNX: run the full generation "
        "pipeline (audio -> mel -> audio encoder -> feature windows; video -> face crop -> masked 6-channel "
        "input -> ONNX Runtime -> paste-back -> H.264 MP4) for every model x backend x input of a suite.",
        epilog="Start with `evalkit demo`. Exit codes: 0 ok, 1 a check failed, 2 usage or input error, "
        "3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    parser.add_argument("--ffmpeg", metavar="PATH",
                        help=f"ffmpeg binary to use (default: ${FFMPEG_ENV}, else the one imageio-ffmpeg ships)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for group, command in COMMANDS:
        if group is not None and group not in groups:
            how = dict(GROUPS[group])
            dest, metavar = how.pop("dest"), how.pop("metavar")
            groups[group] = sub.add_parser(group, **how).add_subparsers(dest=dest, metavar=metavar, required=True)
        command.add_parser(sub if group is None else groups[group])
    _add_verbosity_flags(parser, top=True)
    return parser


def _add_verbosity_flags(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """-q / -v on the program and on every command under it (``evalkit -q run ...`` or ``evalkit run -q ...``).

    Below the top level their default is SUPPRESS, so a command's unset flag never hides the program's.
    """
    default = False if top else argparse.SUPPRESS
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="only results and errors (no progress lines or bars)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="also debug lines (which files and folders were chosen, and why)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_verbosity_flags(child)


# What to do about an OSError, by errno: the environment is at fault, not evalkit (exit 2).
OS_ERROR_HINTS = {
    errno.ENOENT: "no such file or folder: check the path",
    errno.EACCES: "permission denied: check its permissions or choose another path (e.g. --out DIR)",
    errno.EPERM: "operation not permitted: check its permissions or choose another path (e.g. --out DIR)",
    errno.EROFS: "read-only file system: choose a writable output folder (--out DIR)",
    errno.ENOSPC: "no space left on the device: free some space or choose another output folder (--out DIR)",
    errno.EDQUOT: "disk quota exceeded: free some space or choose another output folder (--out DIR)",
    errno.ENAMETOOLONG: "a file or folder name is too long (at most 255 bytes per path part): shorten it",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?): fix the link",
    errno.ENOTDIR: "a file stands where a folder is expected: move it or choose another path",
    errno.EISDIR: "a folder stands where a file is expected: give a file's path",
    errno.EEXIST: "already exists: remove it or choose another path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.EIO: "input/output error: the disk or network file system failed",
    errno.EXDEV: "cannot move across file systems: put the output folder on the same file system",
}
# Damaged input files raise these from the libraries that read them (JSON, SQLite, .npz).
DAMAGED_INPUT = (UnicodeDecodeError, json.JSONDecodeError, sqlite3.DatabaseError, zipfile.BadZipFile)
_PATH_LOCALS = ("path", "filename", "file", "db", "record_path", "run_dir", "folder", "source", "suite_path")


def _file_in_traceback(exc: BaseException) -> str | None:
    """The innermost evalkit frame's path-like local (``path``, ``db``, ...): the file being read."""
    package = str(Path(__file__).resolve().parent)
    tb, frames = exc.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if not frame.f_code.co_filename.startswith(package):
            continue
        for name in _PATH_LOCALS:
            value = frame.f_locals.get(name)
            if isinstance(value, (str, Path)) and value:
                return str(value)
    return None


def _environment_error(exc: OSError) -> str | None:
    """One line for an OSError about a file or the disk, or None when it doesn't look like one (a bug)."""
    hint = OS_ERROR_HINTS.get(exc.errno)
    if hint is None and not exc.filename:
        return None
    where = exc.filename or _file_in_traceback(exc) or "(unknown file)"
    if exc.filename2:
        where = f"{where} -> {exc.filename2}"
    return f"{os.fsdecode(where)}: {hint or exc.strerror or type(exc).__name__}"


def _stdout_is_broken() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real stdout (captured): not a closed pipe
        return False


def _quiet_stdout() -> None:
    """After a closed pipe (``evalkit ... | head``): send what is left to /dev/null, so that Python's flush at
    exit raises nothing (as the Python docs on SIGPIPE recommend)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell shows for a program stopped by a closed pipe
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so that a half-written run folder is removed, never finished."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _run_command(args) -> int:
    """Run the chosen command; library warnings are held back and shown after success, never before an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = args.func(args)
    for w in caught if common.verbosity >= NORMAL else ():
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return code


def entry() -> None:
    """The ``evalkit`` console script and ``python -m evalkit``: ``main()``, then the process ends without the
    interpreter's teardown (``exit_without_teardown``). ``main()`` itself returns, for callers in a process of
    their own (tests)."""
    exit_without_teardown(main())


def exit_without_teardown(code: int) -> None:
    """End the process as the interpreter's exit does where it matters, and skip the rest: non-daemon threads
    joined (with concurrent.futures' exit hooks), ``atexit`` handlers run (temporary folders' finalizers,
    logging, Ray, multiprocessing), the standard streams flushed; then ``os._exit``. What is skipped is freeing
    every module and object one by one, which took 0.5-0.8 CPU-s after a run of the fixture on the 2-core VM
    (numba's and LLVM's compiled code, ONNX Runtime, dlib's models): see docs/speed.md. Every file evalkit
    writes is closed (and renamed into place) before ``main()`` returns."""
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls first at exit (CPython)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: main() has already said what it could
            pass
    os._exit(int(code) & 0xFF)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.error("-q and -v: give one of them (-q: only results and errors; -v: also debug lines)")
    common.verbosity = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    if args.ffmpeg:
        os.environ[FFMPEG_ENV] = args.ffmpeg
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    bars = os.environ.pop("TQDM_DISABLE", None) if args.quiet else None
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # no progress bars (tqdm's own variable; read by the pipeline too)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return _run_command(args)
    except Terminated as exc:
        stderr(f"evalkit: terminated ({_interrupted_run(exc)})")
        return EXIT_TERMINATED
    except UserError as exc:
        kept = ""
        if getattr(exc, "partial_run", None) is not None and str(exc.partial_run) not in str(exc):
            kept = f" ({_interrupted_run(exc)})"
        stderr(f"evalkit: error: {' '.join(str(exc).split())}{kept}")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        stderr(f"evalkit: interrupted ({_interrupted_run(exc)})")
        return 130
    except BrokenPipeError as exc:
        if _stdout_is_broken():
            _quiet_stdout()
            return EXIT_BROKEN_PIPE
        return _internal_or_environment(exc)
    except OSError as exc:
        return _internal_or_environment(exc)
    except DAMAGED_INPUT as exc:
        where = _file_in_traceback(exc) or "an input file"
        what = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "damaged or not the expected format"
        stderr(f"evalkit: error: {where}: {what} ({' '.join(str(exc).split())}); give an intact file")
        return EXIT_USAGE
    except Exception:
        return _internal_error()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if args.quiet:  # as it was: a later main() in the same process (tests) is not quiet by accident
            os.environ.pop("TQDM_DISABLE", None)
            if bars is not None:
                os.environ["TQDM_DISABLE"] = bars


def _interrupted_run(exc: BaseException) -> str:
    """What an interruption left: nothing, or a .partial run folder with finished combinations to resume."""
    completed = getattr(exc, "completed_run", None)
    if completed is not None:
        return (f"after the run was completed: {completed}, with its history entry and every file asked for; "
                "nothing to resume")
    partial = getattr(exc, "partial_run", None)
    if partial is None:
        return "no run folder was completed"
    finished, total = exc.partial_progress
    stage = getattr(exc, "partial_stage", "combinations")
    if stage in ("combinations", "report"):
        return (f"{finished} of {total} combinations finished and are kept in {partial}"
                + ("; the record and report were not yet written" if stage == "report" else "")
                + f"; continue with: {exc.resume_command}")
    steps = getattr(exc, "finishing_steps", {})
    done = ["the record and report"] + [name for name, made in steps.items() if made]
    missing = [name for name, made in steps.items() if not made] + ["the final name"]

    def words(names: list[str]) -> str:
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    return (f"{finished} of {total} combinations finished; {words(done)} are "
            f"written ({partial}); not yet {words(missing)}; finish with: {exc.resume_command}")


def _internal_or_environment(exc: OSError) -> int:
    line = _environment_error(exc)
    if line is None:
        return _internal_error()
    stderr(f"evalkit: error: {line}")
    return EXIT_USAGE


def _internal_error() -> int:
    stderr(traceback.format_exc())
    stderr("evalkit: internal error (a bug in evalkit; please report it with the traceback above)")
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
