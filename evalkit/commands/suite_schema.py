"""`evalkit suite schema`: print the suite JSON Schema (for editor completion)."""

from __future__ import annotations

from evalkit.errors import EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser("schema", help="print the suite JSON Schema (for editor completion)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.config.suite import suite_json_schema

    print(suite_json_schema())
    return EXIT_OK
