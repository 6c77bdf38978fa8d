"""Stage 7: the generator, run on one backend.

A runner has one small interface: ``activate()`` (load, check the model
against the contract), ``infer(image, audio) -> output`` and
``deactivate()``. The public methods check state and shapes once; a backend
implements only ``_activate_impl`` and ``_infer_impl``. ONNX Runtime
execution providers are one kind of runner.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from evalkit.config.contract import Contract
from evalkit.errors import UserError
from evalkit.config.suite import BackendSpec

TENSOR_TYPE = "tensor(float)"  # ONNX Runtime's name for float32: what the pipeline feeds and reads

GRAPH_OPTIMIZATION = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def available_providers() -> list[str]:
    """ONNX Runtime execution providers this installation offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


class ProviderDidNotStart(UserError):
    """ONNX Runtime lists the provider but ran the session on another one (it falls back to the CPU, logging
    why on stderr, when a CUDA, cuDNN or TensorRT library is missing or there is no GPU): numbers measured
    there would be the CPU's under the backend's name."""


class Runner:
    """Base class: state and shape checks around a backend's ``*_impl`` methods."""

    def __init__(self, model_path: Path, contract: Contract):
        self.model_path = Path(model_path)
        self.contract = contract
        self.active = False
        self.activate_seconds: float | None = None
        self.dynamic_batch = False  # True when the model takes any batch size

    def activate(self) -> "Runner":
        t0 = time.perf_counter()
        self._activate_impl()
        self.activate_seconds = time.perf_counter() - t0
        self.active = True
        return self

    def infer(self, image: np.ndarray, audio: np.ndarray) -> np.ndarray:
        if not self.active:
            raise RuntimeError("Runner.infer called before activate()")
        return self._infer_impl(image, audio)

    def deactivate(self) -> None:
        self._deactivate_impl()
        self.active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def _activate_impl(self) -> None:
        raise NotImplementedError

    def _infer_impl(self, image: np.ndarray, audio: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _deactivate_impl(self) -> None:
        pass


def _shape_fits(actual: list, expected: tuple[int, ...]) -> bool:
    """A declared shape fits when ranks agree and every fixed dim equals the expected one."""
    return len(actual) == len(expected) and all(not isinstance(a, int) or a == e for a, e in zip(actual, expected))


class OnnxRuntimeRunner(Runner):
    """The generator on one ONNX Runtime execution provider."""

    def __init__(self, model_path: Path, contract: Contract, backend: BackendSpec):
        super().__init__(model_path, contract)
        self.backend = backend
        self.session = None
        self.providers_used: list[str] = []
        self.io_binding = backend.provider == "CUDAExecutionProvider"
        self.copy_ms: dict[str, list[float]] = {"host_to_device": [], "device_to_host": []}

    def session_options(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        opts = self.backend.session_options
        if opts.intra_op_num_threads is not None:
            so.intra_op_num_threads = opts.intra_op_num_threads
        if opts.inter_op_num_threads is not None:
            so.inter_op_num_threads = opts.inter_op_num_threads
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION[opts.graph_optimization_level])
        so.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if opts.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        spinning = "1" if opts.allow_spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        so.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        so.log_severity_level = 3
        return so

    def _activate_impl(self) -> None:
        import onnxruntime as ort

        provider = self.backend.provider
        providers = [(provider, dict(self.backend.provider_options))]
        if provider != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))
        try:
            self.session = ort.InferenceSession(str(self.model_path), self.session_options(), providers=providers)
        except Exception as exc:
            raise UserError(f"cannot load generator {self.model_path} on {provider}: {exc}") from exc
        self.providers_used = self.session.get_providers()
        if provider not in self.providers_used:
            self.session = None
            offered = available_providers()
            listed = provider in offered
            raise ProviderDidNotStart(
                f"{provider} {'is installed but did not start' if listed else 'is not available'} here: ONNX "
                f"Runtime fell back to {', '.join(self.providers_used)}"
                + (" (its log on stderr says why: usually a missing CUDA, cuDNN or TensorRT library, or no GPU)"
                   if listed else f" (this ONNX Runtime offers {', '.join(offered)})"))
        self._bind_inputs()

    def _bind_inputs(self) -> None:
        """Find the image and audio inputs (by contract name, else by shape) and check their shapes."""
        c = self.contract
        inputs = {i.name: i for i in self.session.get_inputs()}
        where = f"generator {self.model_path}"
        if len(inputs) != 2:
            raise UserError(f"{where}: expected 2 inputs (image, audio), found {len(inputs)}: {list(inputs)}")
        image_name = c.image_input or next(
            (n for n, i in inputs.items() if len(i.shape) == 4 and i.shape[1] == c.image_input_shape[1]), None
        )
        if image_name is None or image_name not in inputs:
            shapes = {n: i.shape for n, i in inputs.items()}
            raise UserError(
                f"{where}: no input of shape {list(c.image_input_shape)} (the 6-channel image); inputs are {shapes}"
                " (set contract.image_input to name it)"
            )
        audio_name = c.audio_input or next(n for n in inputs if n != image_name)
        if audio_name not in inputs:
            raise UserError(f"{where}: no input named '{audio_name}'; inputs are {list(inputs)}")
        expected = {image_name: c.image_input_shape, audio_name: (1, *c.audio_input_shape)}
        for name, shape in expected.items():
            if not _shape_fits(inputs[name].shape, shape):
                raise UserError(
                    f"{where}: input '{name}' has shape {inputs[name].shape}, the contract expects {list(shape)}"
                )
        outputs = self.session.get_outputs()
        if not _shape_fits(outputs[0].shape, c.output_shape):
            raise UserError(
                f"{where}: output '{outputs[0].name}' has shape {outputs[0].shape}, "
                f"the contract expects {list(c.output_shape)}"
            )
        for kind, arg in (("input", inputs[image_name]), ("input", inputs[audio_name]), ("output", outputs[0])):
            if arg.type != TENSOR_TYPE:
                raise UserError(
                    f"{where}: {kind} '{arg.name}' is {arg.type}, evalkit feeds and reads float32 ({TENSOR_TYPE}); "
                    "export the model with float32 inputs and outputs (keep float16 inside, casting at the edges)"
                )
        self.image_name, self.audio_name = image_name, audio_name
        self.output_name = outputs[0].name
        self.dynamic_batch = not isinstance(inputs[image_name].shape[0], int)
        self.io_binding = self.io_binding and self.providers_used[0] == "CUDAExecutionProvider"

    def _infer_impl(self, image: np.ndarray, audio: np.ndarray) -> np.ndarray:
        if self.io_binding:
            return self._infer_bound(image, audio)
        return self.session.run([self.output_name], {self.image_name: image, self.audio_name: audio})[0]

    def _infer_bound(self, image: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """CUDA with IO binding: host-to-device and device-to-host copies timed apart from the run."""
        import onnxruntime as ort

        device = int(self.backend.provider_options.get("device_id", 0))
        t0 = time.perf_counter()
        bound_image = ort.OrtValue.ortvalue_from_numpy(image, "cuda", device)
        bound_audio = ort.OrtValue.ortvalue_from_numpy(audio, "cuda", device)
        t1 = time.perf_counter()
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.image_name, bound_image)
        binding.bind_ortvalue_input(self.audio_name, bound_audio)
        binding.bind_output(self.output_name, "cuda", device)
        self.session.run_with_iobinding(binding)
        t2 = time.perf_counter()
        output = binding.copy_outputs_to_cpu()[0]
        t3 = time.perf_counter()
        self.copy_ms["host_to_device"].append((t1 - t0) * 1e3)
        self.copy_ms["device_to_host"].append((t3 - t2) * 1e3)
        return output

    def _deactivate_impl(self) -> None:
        self.session = None
