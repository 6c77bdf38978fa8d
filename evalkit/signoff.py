"""Model-release sign-off: run a release suite on one model file and write a verifiable record.

``signoff.json`` holds the model's SHA-256, the suite's SHA-256, the evalkit
version, the environment (machine, versions, providers), every criterion (gate)
with its value and verdict, the overall verdict, and ``digest``: the SHA-256
of the record's canonical JSON (keys sorted, no spaces) without the digest
itself. ``verify`` recomputes both: a changed value breaks the digest, another
model file breaks the model hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from evalkit import __version__
from evalkit.environment import sha256_file
from evalkit.errors import UserError
from evalkit.record import load_run
from evalkit.suite import LoadedSuite, Suite

SIGNOFF_JSON = "signoff.json"
SIGNOFF_HTML = "signoff.html"
SCHEMA = "evalkit.signoff.v1"


def canonical_digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def with_model(loaded: LoadedSuite, model_path: Path, model_name: str | None) -> LoadedSuite:
    """The suite with one model's generator replaced by ``model_path``."""
    suite = loaded.suite
    if model_name is None:
        if len(suite.models) != 1:
            raise UserError(f"{loaded.path}: a release suite names {len(suite.models)} models; pass --model-name "
                            f"to say which one {model_path} replaces ({', '.join(m.name for m in suite.models)})")
        model_name = suite.models[0].name
    if model_name not in {m.name for m in suite.models}:
        raise UserError(f"{loaded.path}: no model named {model_name!r}")
    if not Path(model_path).is_file():
        raise UserError(f"model file not found: {model_path}")
    if not suite.gates:
        raise UserError(f"{loaded.path}: a release suite needs gates (its release criteria)")
    data = suite.model_dump(mode="json", exclude_unset=True)
    data["models"] = [dict(m, generator=str(Path(model_path).resolve())) if m["name"] == model_name else m
                      for m in data["models"]]
    return LoadedSuite(suite=Suite.model_validate(data), path=loaded.path, sha256=loaded.sha256, text=loaded.text)


def build_signoff(loaded: LoadedSuite, model_path: Path, run_dir: Path) -> dict:
    record = load_run(run_dir)
    criteria = record.get("gates", [])
    passed = bool(criteria) and all(g["passed"] for g in criteria)
    signoff = {
        "schema": SCHEMA,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(Path(model_path).resolve()), "sha256": sha256_file(Path(model_path))},
        "suite": {"name": loaded.suite.name, "path": str(loaded.path), "sha256": loaded.sha256},
        "evalkit": __version__,
        "environment": {"machine": record["machine"], "versions": record["versions"],
                        "available_providers": record["available_providers"]},
        "run": {"run_id": record["run_id"], "folder": str(run_dir)},
        "inputs": record["inputs"],
        "criteria": criteria,
        "verdict": "PASS" if passed else "FAIL",
    }
    signoff["digest"] = canonical_digest(signoff)
    return signoff


def write_signoff(signoff: dict, folder: Path) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    env = jinja2.Environment(loader=jinja2.PackageLoader("evalkit.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    for name, text in ((SIGNOFF_JSON, json.dumps(signoff, indent=1) + "\n"),
                       (SIGNOFF_HTML, env.get_template("signoff.html.j2").render(s=signoff))):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, folder / name)
        paths.append(folder / name)
    return paths[0], paths[1]


def verify_signoff(signoff_path: Path, model_path: Path) -> list[str]:
    """Problems found (an empty list: the record is unaltered and belongs to that model file)."""
    try:
        signoff = json.loads(Path(signoff_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read sign-off record {signoff_path}: {exc}") from None
    if not Path(model_path).is_file():
        raise UserError(f"model file not found: {model_path}")
    problems = []
    if signoff.get("digest") != canonical_digest(signoff):
        problems.append(f"{signoff_path} was altered: its digest does not match its contents")
    actual = sha256_file(Path(model_path))
    if signoff.get("model", {}).get("sha256") != actual:
        problems.append(f"{model_path} (SHA-256 {actual[:16]}...) is not the model this record signs off "
                        f"({str(signoff.get('model', {}).get('sha256'))[:16]}...)")
    return problems
