"""Fault injection for the tests of interruptions: stop evalkit at a named step, with a real signal.

``EVALKIT_FAULT_STOP_AT=<step>`` makes the process that reaches ``fault_point(<step>)`` send itself
``EVALKIT_FAULT_SIGNAL`` (a signal name: TERM, the default, INT, KILL, STOP, ...), so that a test hits a narrow
window (between two renames, inside the history transaction) every time, without sleeping and hoping. The
signal is real: what happens next is what happens when a user presses Ctrl-C, a scheduler sends SIGTERM or the
out-of-memory killer sends SIGKILL at that moment. Unset (always, outside tests), ``fault_point`` does nothing.

The steps (where they are in the code is the documentation of the windows they test):

- ``claimed``: a run (or a resume) has claimed its ``.partial`` folder (holds its lock), before anything else;
- ``job:<combination folder>``: a combination starts, in the process that runs it (a worker, with --workers);
- ``history``: inside the history database's write transaction, before it commits;
- ``finishing``: history, JUnit/Markdown, golden outputs and sign-off are written, before the final rename;
- ``renamed``: right after the run folder's final rename (signals there are deferred until it is done);
- ``baseline-swap``: ``baseline set --force`` has switched the new baseline in, before removing the old one.
"""

from __future__ import annotations

import os
import signal

STOP_AT_ENV = "EVALKIT_FAULT_STOP_AT"
SIGNAL_ENV = "EVALKIT_FAULT_SIGNAL"


def fault_signal() -> signal.Signals:
    name = os.environ.get(SIGNAL_ENV, "TERM").upper()
    return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]


def fault_point(step: str) -> None:
    """Send this process the fault signal when ``EVALKIT_FAULT_STOP_AT`` names ``step``."""
    if os.environ.get(STOP_AT_ENV) == step:
        os.kill(os.getpid(), fault_signal())
