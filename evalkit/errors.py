"""The two exception roots of evalkit.

``UserError``: the input is wrong (a missing file, a bad suite field, a model
that does not fit the contract). The CLI prints its message on one line and
exits with code 2. The message names the file or field, what was expected, and
where possible how to fix it.

Anything else that escapes is a bug in evalkit: the CLI reports it as an
internal error with exit code 3.
"""

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class UserError(Exception):
    """Bad input or usage. The message is shown to the user as is."""

    exit_code = EXIT_USAGE


# --- a stop the user asked for -----------------------------------------------------------------------------
# The CLI's signal handlers (Ctrl-C, SIGTERM) raise an exception in whatever code runs at that moment. Code
# that catches everything and goes on (a library's bare ``except:``) would lose it, and the run would finish
# as if nothing had been asked. So each handler also notes the stop here, and the run checks the note between
# steps (``stop_if_requested``): before each frame it generates, after each combination, and before the run
# folder gets its final name.
_stop_requests: list[type[BaseException]] = []


def request_stop(kind: type[BaseException]) -> None:
    """Note that a signal asked to stop, with the exception that unwinds for it (KeyboardInterrupt, ...)."""
    _stop_requests.append(kind)


def stop_if_requested() -> None:
    """Raise the first requested stop's exception again, if a signal asked to stop."""
    if _stop_requests:
        raise _stop_requests[0]()


def clear_stop_requests() -> None:
    """Forget the requests (the CLI, when a command ends: a later command in the same process starts clean)."""
    _stop_requests.clear()
