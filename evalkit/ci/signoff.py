"""Model-release sign-off: run a release suite on one model file and write a verifiable record.

``signoff.json`` holds the model's SHA-256, the suite's SHA-256, the evalkit
version, the environment (machine, versions, providers), every criterion (gate)
with its value and verdict, the overall verdict, and ``digest``: the SHA-256
of the record's canonical JSON (keys sorted, no spaces) without the digest
itself. ``verify`` recomputes both: a changed value breaks the digest, another
model file breaks the model hash.

The digest proves integrity only: anyone who edits the record can recompute
it. Origin needs a key: ``evalkit signoff SUITE --model M --key KEY.pem``
signs the record with Ed25519 (``signature``: the algorithm, the SHA-256 of
the raw public key, and the base64 signature over the canonical JSON of the
record without ``signature``), and ``verify --public-key PUB.pem`` checks it.
Without a key the record says ``"signature": null`` (unsigned), and ``verify``
says it checked integrity, not origin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path


from evalkit import __version__
from evalkit.ci.gates import run_checks
from evalkit.record.environment import sha256_file
from evalkit.errors import UserError
from evalkit.record.io import write_text_atomic
from evalkit.record.runkey import RunKey
from evalkit.record.summary import json_safe
from evalkit.report.templating import render
from evalkit.config.suite import LoadedSuite, Suite

SIGNOFF_JSON = "signoff.json"
SIGNOFF_HTML = "signoff.html"
SCHEMA = "evalkit.signoff.v1"
SIGNATURE_ALGORITHM = "Ed25519"
PRIVATE_KEY_FILE = "signoff_key.pem"
PUBLIC_KEY_FILE = "signoff_key.pub.pem"


def _canonical(record: dict, leave_out: tuple[str, ...]) -> bytes:
    body = {k: v for k, v in record.items() if k not in leave_out}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def canonical_digest(record: dict) -> str:
    """SHA-256 of the record's canonical JSON without ``digest`` and ``signature``."""
    return hashlib.sha256(_canonical(record, ("digest", "signature"))).hexdigest()


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise UserError("signing needs the 'cryptography' package: pip install cryptography") from None
    return serialization, ed25519, InvalidSignature


def _public_fingerprint(public_key) -> str:
    serialization, _, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_keys(folder: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``signoff_key.pem`` (private, PKCS8, mode 0600) and ``signoff_key.pub.pem``.

    Existing files are never replaced."""
    serialization, ed25519, _ = _crypto()
    folder = Path(folder)
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise UserError(f"{path}: exists; refusing to replace a key (choose another --out)")
    folder.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def load_private_key(path: Path):
    """An Ed25519 private key from an unencrypted PEM file (as ``generate_keys`` writes)."""
    serialization, ed25519, _ = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"--key {path}: expected an unencrypted PEM private key file ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UserError(f"--key {path}: expected an Ed25519 key, found {type(key).__name__} "
                        "(make one with `evalkit signoff keygen --out DIR`)")
    return key


def load_public_key(path: Path):
    """An Ed25519 public key from a PEM file."""
    serialization, ed25519, _ = _crypto()
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"--public-key {path}: expected a PEM public key file ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UserError(f"--public-key {path}: expected an Ed25519 public key, found {type(key).__name__}")
    return key


def sign(record: dict, private_key) -> dict:
    """The record with ``signature`` set: Ed25519 over its canonical JSON without ``signature``."""
    value = private_key.sign(_canonical(record, ("signature",)))
    return dict(record, signature={"algorithm": SIGNATURE_ALGORITHM,
                                   "public_key_sha256": _public_fingerprint(private_key.public_key()),
                                   "value": base64.b64encode(value).decode()})


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


def build_signoff(loaded: LoadedSuite, model_path: Path, run_dir: Path, record, private_key=None) -> dict:
    """The sign-off record of the finished run in ``run_dir`` (``record``: its ``record.schema.RunRecord``, as
    ``load_run`` reads it); signed with ``private_key`` (Ed25519) when given."""
    failed = [e for e in record.runs if e.status == "failed"]  # a combination that failed fails the sign-off
    gates = [g.model_dump(mode="json") for g in record.gates or []] + [r.to_dict() for r in run_checks(failed)]
    criteria = list({(g["gate"], *RunKey.of(g)): g  # each criterion once
                     for g in gates}.values())
    passed = bool(criteria) and all(g["passed"] for g in criteria)
    signoff = {
        "schema": SCHEMA,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(Path(model_path).resolve()), "sha256": sha256_file(Path(model_path))},
        "suite": {"name": loaded.suite.name, "path": str(loaded.path), "sha256": loaded.sha256},
        "evalkit": __version__,
        "environment": {"machine": record.machine, "versions": record.versions,
                        "available_providers": record.available_providers},
        "run": {"run_id": record.run_id, "folder": str(run_dir)},
        "inputs": {name: facts.model_dump(mode="json") for name, facts in record.inputs.items()},
        "runs": [{"model": e.model, "backend": e.backend, "input": e.input, "protocol": e.protocol,
                  "verdict": e.verdict.text if e.verdict else e.status,
                  "findings": [f.model_dump() for f in e.verdict.findings] if e.verdict else []}
                 for e in record.runs],
        "criteria": criteria,
        "verdict": "PASS" if passed else "FAIL",
    }
    signoff = json_safe(signoff)
    signoff["digest"] = canonical_digest(signoff)
    signoff["signature"] = None
    return sign(signoff, private_key) if private_key is not None else signoff


def shown_value(field: str, value) -> str:
    """A criterion's value as the report shows that field (its decimals), else 4 significant digits."""
    import math

    from evalkit.report.html import TABLE_COLUMNS

    decimals = {col: d for col, _, d in TABLE_COLUMNS}
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-" if value is None else str(value)
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if field in decimals:
        return f"{v:.{decimals[field]}f}" if decimals[field] else f"{v:+.0f}" if "offset" in field else f"{v:.0f}"
    return f"{v:.4g}"


def write_signoff(signoff: dict, folder: Path) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in ((SIGNOFF_JSON, json.dumps(signoff, indent=1, allow_nan=False) + "\n"),
                       (SIGNOFF_HTML, render("signoff.html.j2", strict=False, s=signoff, shown=shown_value))):
        paths.append(write_text_atomic(folder / name, text))  # the basename filter: the page names no paths
    return paths[0], paths[1]


def read_signoff(signoff_path: Path) -> dict:
    """A sign-off record, checked to be one (a JSON object of schema evalkit.signoff.v1 with its keys)."""
    try:
        signoff = json.loads(Path(signoff_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read sign-off record {signoff_path}: {exc}") from None
    if not isinstance(signoff, dict):
        raise UserError(f"{signoff_path}: expected a sign-off record (a JSON object), found a {type(signoff).__name__}")
    if signoff.get("schema") != SCHEMA:
        raise UserError(f"{signoff_path}: schema is {signoff.get('schema')!r}, expected {SCHEMA!r}")
    if not isinstance(signoff.get("model"), dict) or "digest" not in signoff:
        raise UserError(f"{signoff_path}: damaged sign-off record, expected keys 'model' (an object) and 'digest'")
    return signoff


def verify_signoff(signoff_path: Path, model_path: Path, public_key_path: Path | None = None) -> list[str]:
    """Problems found (an empty list: the record is unaltered and belongs to that model file, and, with
    ``public_key_path``, carries a valid Ed25519 signature by that key's owner)."""
    signoff = read_signoff(signoff_path)
    if not Path(model_path).is_file():
        raise UserError(f"model file not found: {model_path}")
    public_key = load_public_key(public_key_path) if public_key_path is not None else None
    problems = []
    if signoff.get("digest") != canonical_digest(signoff):
        problems.append(f"{signoff_path} was altered: its digest does not match its contents")
    actual = sha256_file(Path(model_path))
    if signoff["model"].get("sha256") != actual:
        problems.append(f"{model_path} (SHA-256 {actual[:16]}...) is not the model this record signs off "
                        f"({str(signoff['model'].get('sha256'))[:16]}...)")
    if public_key is not None:
        problems += _signature_problems(signoff, signoff_path, public_key, public_key_path)
    return problems


def _signature_problems(signoff: dict, signoff_path: Path, public_key, public_key_path: Path) -> list[str]:
    _, _, InvalidSignature = _crypto()
    signature = signoff.get("signature")
    if not signature:
        return [f"{signoff_path} is unsigned: it cannot be checked against {public_key_path}"]
    if not isinstance(signature, dict) or signature.get("algorithm") != SIGNATURE_ALGORITHM:
        return [f"{signoff_path}: signature is not an {SIGNATURE_ALGORITHM} signature"]
    if signature.get("public_key_sha256") != _public_fingerprint(public_key):
        return [f"{signoff_path} was signed by another key than {public_key_path}"]
    try:
        public_key.verify(base64.b64decode(str(signature.get("value")), validate=True),
                          _canonical(signoff, ("signature",)))
    except (InvalidSignature, ValueError):
        return [f"{signoff_path}: the signature does not match its contents (altered, or not signed by "
                f"{public_key_path})"]
    return []
