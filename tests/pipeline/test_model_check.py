"""evalkit.pipeline.model_check: the fixture models pass; tiny broken exports are named with what to change."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from evalkit.cli import main
from evalkit.config.contract import Contract
from evalkit.errors import UserError
from evalkit.pipeline.model_check import check_model

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def tiny_generator(path, image=("image", [1, 6, 320, 320], F32), audio=("audio", [1, 32, 16, 16], F32),
                   scale: float = 1.0):
    """output = first 3 image channels (x scale), as float32: a copy model of the contract's shapes."""
    name, shape, dtype = image
    nodes, inputs = [], [helper.make_tensor_value_info(name, dtype, shape)]
    src = name
    if dtype != F32:
        nodes.append(helper.make_node("Cast", [name], ["image_f32"], to=F32))
        src = "image_f32"
    inits = [helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
             helper.make_tensor("ends", TensorProto.INT64, [1], [3]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
             helper.make_tensor("scale", F32, [], [scale])]
    nodes.append(helper.make_node("Slice", [src, "starts", "ends", "axes"], ["sliced"]))
    nodes.append(helper.make_node("Mul", ["sliced", "scale"], ["output"]))
    if audio is not None:
        inputs.append(helper.make_tensor_value_info(audio[0], audio[2], audio[1]))
    out_shape = [shape[0], 3, *shape[2:]]
    graph = helper.make_graph(nodes, "tiny", inputs, [helper.make_tensor_value_info("output", F32, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def failed(result) -> list[str]:
    return [f.message for f in result.findings if not f.ok]


def test_fixture_models_pass(fixtures_dir):
    models = fixtures_dir / "models"
    result = check_model(models / "reference.onnx", models / "audio_encoder.onnx")
    assert result, failed(result)
    messages = " | ".join(f.message for f in result.findings)
    assert "one real frame" in messages and "real mel windows" in messages  # both models really ran


def test_tiny_copy_model_passes(tmp_path):
    assert check_model(tiny_generator(tmp_path / "g.onnx"))


def test_wrong_input_name_given_in_the_contract(tmp_path):
    result = check_model(tiny_generator(tmp_path / "g.onnx"), contract=Contract(image_input="face"))
    assert not result
    assert any("no input named 'face'" in m and "'image'" in m for m in failed(result)), failed(result)


def test_wrong_image_shape(tmp_path):
    path = tiny_generator(tmp_path / "g.onnx", image=("image", [1, 6, 256, 256], F32))
    [message, *_] = failed(check_model(path))
    assert "input 'image' has shape [1,6,256,256], the contract expects [1,6,320,320]" in message


def test_no_six_channel_input(tmp_path):
    path = tiny_generator(tmp_path / "g.onnx", image=("image", [1, 3, 320, 320], F32))
    assert any(m.startswith(f"generator {path}: no input of shape [1,6,320,320]") for m in failed(check_model(path)))


def test_float16_inputs(tmp_path):
    path = tiny_generator(tmp_path / "g.onnx", image=("image", [1, 6, 320, 320], F16),
                          audio=("audio", [1, 32, 16, 16], F16))
    messages = failed(check_model(path))
    assert any("input 'image' is float16: export with float32 inputs (torch.onnx.export of a .float() model" in m
               for m in messages), messages
    assert any("input 'audio' is float16" in m for m in messages)


def test_no_audio_input(tmp_path):
    messages = failed(check_model(tiny_generator(tmp_path / "g.onnx", audio=None)))
    assert len(messages) == 1 and "no audio input" in messages[0] and "[1,32,16,16]" in messages[0]


def test_wrong_audio_shape_names_the_family_shapes(tmp_path):
    path = tiny_generator(tmp_path / "g.onnx", audio=("audio", [1, 16, 512], F32))
    [message] = failed(check_model(path))
    assert "audio input 'audio' has shape [1,16,512]" in message and "hubert [1,32,32,32]" in message


def test_output_outside_zero_one_is_counted(tmp_path):
    """x1.5 pushes the bright part of the drawn face above 1: counted exactly from the real frame."""
    from evalkit.pipeline.model_check import real_inputs

    findings = []
    image, _ = real_inputs(Contract(), None, findings)
    expected = int(np.count_nonzero(image[0, :3] * np.float32(1.5) > 1))
    assert expected > 0
    messages = failed(check_model(tiny_generator(tmp_path / "g.onnx", scale=1.5)))
    assert messages == [m for m in messages if f"output has {expected} values outside [0,1]" in m] and messages


def test_dynamic_batch_axis_is_reported(tmp_path):
    path = tiny_generator(tmp_path / "g.onnx", image=("image", ["batch", 6, 320, 320], F32),
                          audio=("audio", ["batch", 32, 16, 16], F32))
    result = check_model(path)
    assert result and any("dynamic axes image[0]='batch'" in f.message for f in result.findings)


def test_unreadable_file_is_a_user_error(tmp_path):
    bad = tmp_path / "g.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="not an ONNX model"):
        check_model(bad)


def test_cli_exit_codes_and_json(fixtures_dir, tmp_path, capsys):
    models = fixtures_dir / "models"
    assert main(["model", "check", str(models / "reference.onnx"), str(models / "audio_encoder.onnx")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "model check: passed"
    path = tiny_generator(tmp_path / "g.onnx", audio=None)
    assert main(["model", "check", str(path), "--json"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["passed"] is False
    assert [f["level"] for f in record["findings"] if not f["ok"]] == ["error"]
    contract = tmp_path / "contract.yaml"
    contract.write_text("image_input: face\n")
    assert main(["model", "check", str(tiny_generator(tmp_path / "h.onnx")), "--contract", str(contract)]) == 1
    assert "no input named 'face'" in capsys.readouterr().out
    (tmp_path / "x.onnx").write_text("garbage")
    assert main(["model", "check", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x.onnx: not an ONNX model" in err
