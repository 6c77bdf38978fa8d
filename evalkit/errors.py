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
