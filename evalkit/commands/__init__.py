"""evalkit's commands, one module each (as asv's are): ``evalkit metrics sync`` is ``metrics_sync.py``.

Each module has ``add_parser(sub)``, which declares the command (its flags, help and description) on the
subparsers ``sub`` and sets its ``run`` as the function to call, and ``run(args)``, which does the work and
returns the exit code. ``evalkit.cli`` lists the commands (``COMMANDS``), builds the parser from them and turns
what a command raises into one line and an exit code; ``common.py`` holds what several commands share. A
command imports what it needs when it runs, so that ``--help`` and a mistake in the options are answered
before the pipeline is imported.
"""
