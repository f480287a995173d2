"""ONNX Runtime backend of live inference on CPU: the checkpoint exported once at load, run by onnxruntime.

Why: one 3 s window (300 frames) through the default model's two bidirectional GRU layers takes
about 20 ms in PyTorch on one CPU core (a handful of small ops per time step and direction) and
about 5 ms in onnxruntime's fused GRU kernel, with outputs equal to 1e-6 (``bench/pipeline_streams_bench.py``
measures both). The exported graph is ``normaliser -> model.forward_one`` for one window
``(frames, features)`` of raw feature frames, any number of frames; :class:`OnnxForward` checks
it against PyTorch on probe windows before it is used, so an export that computes something
else is refused (:class:`OnnxExportError`), never run.

onnxruntime (MIT) and onnx (Apache-2.0; the exporter needs it) are runtime dependencies.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from ser_robot.errors import SerRobotError
from ser_robot.features.normalization import FeatureNormalizer

__all__ = ["BACKENDS", "OnnxExportError", "OnnxForward", "PROBE_FRAMES"]

BACKENDS = ("auto", "torch", "onnxruntime")
"""``auto``: onnxruntime on CPU when the model exports and matches, else PyTorch; ``torch``; ``onnxruntime``."""

PROBE_FRAMES = (1, 37, 300)
"""Window lengths (frames) on which the export is compared with PyTorch before use (and the model's own
``probe_frames`` when it has them: MTL-AUG's utterances of several segments)."""

_RTOL, _ATOL = 1e-3, 1e-4  # allowed difference from PyTorch on the probe windows (outputs are logits)
_OPSET = 17


class OnnxExportError(SerRobotError):
    """A model could not be exported to ONNX, or its export does not compute what PyTorch computes."""


class _Window(nn.Module):
    """``(frames, features)`` raw -> ``(num_outputs,)``: z-normalised as by the checkpoint's
    :class:`~ser_robot.features.normalization.FeatureNormalizer` (its float32 ``mean`` and ``scale``;
    the normaliser itself keeps non-tensor state the exporter cannot trace), then one utterance."""

    def __init__(self, model: nn.Module, normalizer: FeatureNormalizer) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", normalizer.mean.float())
        self.register_buffer("scale", normalizer.scale.float())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.forward_one(((frames - self.mean) / self.scale)[None])[0]


class OnnxForward:
    """``model.forward_one`` after ``normalizer`` as an onnxruntime session on ``threads`` CPU threads.

    ``forward(frames (frames, features) float32) -> (num_outputs,) float32``; raises
    :class:`OnnxExportError` when the export fails or differs from PyTorch on :data:`PROBE_FRAMES`.
    One thread by default: a window is too small to gain from more, and the pipeline's other
    nodes share the cores.
    """

    def __init__(self, model: nn.Module, normalizer: FeatureNormalizer, num_features: int, threads: int = 1) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise OnnxExportError(f"onnxruntime is not installed ({error}); install requirements/base.txt") from None
        window = _Window(model, normalizer).eval()
        graph = io.BytesIO()
        example = torch.zeros(PROBE_FRAMES[-1], num_features)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the exporter warns about the GRU's batch size and deprecations
                torch.onnx.export(window, (example,), graph, input_names=["frames"], output_names=["outputs"],
                                  dynamic_axes={"frames": {0: "frames"}}, opset_version=_OPSET, dynamo=False)
        except Exception as error:  # noqa: BLE001 - any exporter failure means: use PyTorch
            raise OnnxExportError(f"{type(model).__name__} does not export to ONNX: "
                                  f"{type(error).__name__}: {error}") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(graph.getvalue(), options, providers=["CPUExecutionProvider"])
        self.graph_bytes = len(graph.getvalue())
        self._check(window, num_features)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Raw frames ``(frames >= 1, features)`` -> outputs ``(num_outputs,)`` float32."""
        return self.session.run(None, {"frames": np.ascontiguousarray(frames, dtype=np.float32)})[0]

    def _check(self, window: _Window, num_features: int) -> None:
        """Compare with PyTorch on random windows at the features' scale; raise :class:`OnnxExportError` if unequal."""
        generator = torch.Generator().manual_seed(0)
        for frames in (*PROBE_FRAMES, *getattr(window.model, "probe_frames", ())):
            x = window.mean + window.scale * torch.randn(frames, num_features, generator=generator)
            with torch.inference_mode():
                expected = window(x).numpy()
            got = self(x.numpy())
            if got.shape != expected.shape or not np.allclose(got, expected, rtol=_RTOL, atol=_ATOL):
                raise OnnxExportError(f"the ONNX export of {type(window.model).__name__} differs from PyTorch on a "
                                      f"{frames}-frame window (max |difference| "
                                      f"{float(np.max(np.abs(got - expected))) if got.shape == expected.shape else 'shape'})")
