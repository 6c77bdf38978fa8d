"""The suite schema: typed objects, contract overrides, errors that name the field."""

from __future__ import annotations

import json

import pytest

from evalkit.config.contract import Contract
from evalkit.errors import UserError
from evalkit.config.suite import load_suite, suite_json_schema
from tests.conftest import REPO, demo_suite_data, write_suite


def test_demo_suite_parses_into_typed_objects(demo_suite):
    loaded = load_suite(demo_suite)
    s = loaded.suite
    assert s.name == "demo"
    assert [m.name for m in s.models] == ["reference", "lag2", "noisy", "reference_fp16", "mobile-unet", "copycat"]
    assert [p.name for p in s.protocols] == ["reconstruction"]  # the default protocol
    assert all(m.generator.is_absolute() and m.generator.is_file() for m in s.models)
    assert s.contract_for(s.models[0]) == Contract()
    assert len(loaded.sha256) == 64


def test_model_overrides_win_over_suite_overrides(fixtures_dir, tmp_path):
    data = demo_suite_data(fixtures_dir)
    data["contract"] = {"fps": 30, "channel_order": "rgb"}
    data["models"][1]["contract"] = {"fps": 24}
    s = load_suite(write_suite(tmp_path / "s.yaml", data)).suite
    assert s.contract_for(s.models[0]).fps == 30
    assert s.contract_for(s.models[1]).fps == 24 and s.contract_for(s.models[1]).channel_order == "rgb"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(colour="red"), r"s.yaml: colour: unknown key 'colour' \(valid keys: name, description"),
        (lambda d: d["models"][0].update(weights="x"), r"models\[0\]\.weights: unknown key 'weights'"),
        (lambda d: d["inputs"][0].update(video="nope.mp4"), r"inputs\[0\]\.video: file not found: .*nope.mp4"),
        (lambda d: d["contract"].update(mask_box=[5, 5, 400, 310]), r"mask_box .* does not fit in the inner region"),
        (lambda d: d["contract"].update(audio_input_shape=[32, 16, 15]), r"audio_input_shape \[32, 16, 15\] holds"),
        (lambda d: d["contract"].update(channel_order="rbg"), r"contract\.channel_order: Input should be 'bgr' or 'rgb'"),
        (lambda d: d.pop("models"), r"models: required field is missing"),
        (lambda d: d["models"].append(dict(d["models"][0])), r"names must be unique, repeated: \['reference'\]"),
    ],
)
def test_bad_suites_name_file_field_and_expectation(fixtures_dir, tmp_path, mutate, message):
    data = demo_suite_data(fixtures_dir)
    data.setdefault("contract", {})
    mutate(data)
    with pytest.raises(UserError, match=message):
        load_suite(write_suite(tmp_path / "s.yaml", data))


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodels: [\n  - a: b\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: not valid YAML"):
        load_suite(path)


def test_json_schema_describes_every_section():
    schema = json.loads(suite_json_schema())
    assert {"name", "models", "inputs", "backends", "contract"} <= set(schema["properties"])
    assert "mouth_box" in schema["$defs"]["ContractOverrides"]["properties"]


def test_repository_suites_use_only_known_keys():
    # Every suite shipped in suites/ is checked for schema errors other than missing fixture files.
    for path in (REPO / "suites").glob("*.yaml"):
        try:
            load_suite(path)
        except UserError as exc:
            assert "file not found" in str(exc) or "folder not found" in str(exc), exc
