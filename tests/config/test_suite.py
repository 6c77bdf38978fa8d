"""The suite schema: typed objects, contract overrides, errors that name the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def repository_suites_beside(fixtures: Path, folder: Path) -> list[Path]:
    """Copies of the suites shipped in suites/ whose ``../data/fixtures`` is the built ``fixtures`` folder."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "fixtures").symlink_to(fixtures, target_is_directory=True)
    (folder / "suites").mkdir()
    copies = []
    for path in sorted((REPO / "suites").glob("*.yaml")):
        copies.append(folder / "suites" / path.name)
        shutil.copyfile(path, copies[-1])
    return copies


def test_repository_suites_use_only_known_keys(fixtures_dir, tmp_path):
    # Every suite shipped in suites/ loads whole: run beside the built fixtures (a symlink where its paths
    # expect data/fixtures), a missing file can never hide a typo (before, a "file not found" was accepted).
    copies = repository_suites_beside(fixtures_dir, tmp_path)
    assert {p.name for p in copies} >= {"demo.yaml", "release.yaml", "backends.yaml"}
    for path in copies:
        load_suite(path)  # raises UserError on any unknown key or bad value


def test_a_typo_in_a_repository_suite_is_caught(fixtures_dir, tmp_path):
    # the check above can fail: the demo suite with one key misspelt does not load
    path = repository_suites_beside(fixtures_dir, tmp_path)[0]
    path.write_text(path.read_text().replace("crop_boxes:", "crop_boxs:", 1))
    with pytest.raises(UserError, match="unknown key 'crop_boxs'"):
        load_suite(path)
