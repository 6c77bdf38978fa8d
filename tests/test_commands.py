"""The commands are one module each: ``evalkit GROUP ACTION`` runs ``evalkit/commands/GROUP_ACTION.py``'s ``run``,
and every module of ``evalkit/commands/`` (but ``common.py``) is a command of the parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import evalkit.commands
from evalkit.cli import COMMANDS, build_parser


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every command that runs something."""
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not children:
        yield path, parser
    for action in children:
        for name, child in action.choices.items():
            yield from _leaves(child, path + (name,))


def test_each_command_runs_the_module_named_after_it():
    leaves = list(_leaves(build_parser()))
    assert len(leaves) == len(COMMANDS) == 18
    for words, parser in leaves:
        run = parser.get_default("func")
        assert run.__name__ == "run"
        assert run.__module__ == "evalkit.commands." + "_".join(words).replace("-", "_"), words


def test_every_command_module_is_listed():
    files = {p.stem for p in Path(evalkit.commands.__file__).parent.glob("*.py")} - {"__init__", "common"}
    assert {module.__name__.rpartition(".")[2] for _, module in COMMANDS} == files
