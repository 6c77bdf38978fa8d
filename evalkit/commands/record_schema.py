"""`evalkit record schema`: print the run record's JSON Schema (run.json, today's version)."""

from __future__ import annotations

import json

from evalkit.errors import EXIT_OK


def add_parser(sub) -> None:
    parser = sub.add_parser("schema", help="print the run record's JSON Schema (run.json, today's version)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from evalkit.record.schema import record_json_schema

    print(json.dumps(record_json_schema(), indent=1))
    return EXIT_OK
