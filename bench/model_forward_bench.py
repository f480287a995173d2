"""Model forward time per live window: every registered architecture, PyTorch and onnxruntime, one thread.

The inference node runs one window (``--window-s``, 3 s = 300 frames by default) through the
normaliser and ``model.forward_one`` at a time (:mod:`ser_robot.inference.onnx_backend`). This bench
builds each architecture at its shipped size (``config/models/*.yaml``) with random weights and a
normaliser fitted on random frames (the time does not depend on the weights), then times ``--repeats``
windows with PyTorch and with the checked onnxruntime export. Reports median and p99 in ms and the
ratio to the reference, the Lakomkin RNN's PyTorch forward in the same run (other work on the machine
inflates the absolute figures, less so the ratios).

    python bench/model_forward_bench.py --out out/bench            (make bench)
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from timing import times_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    parser.add_argument("--window-s", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import torch

    from ser_robot.features.normalization import FeatureNormalizer
    from ser_robot.features.sets import create_extractor
    from ser_robot.inference.onnx_backend import OnnxExportError, OnnxForward, _Window
    from ser_robot.models import MODELS, load_model_config

    torch.set_num_threads(1)
    frames_per_window = int(round(args.window_s * 100))
    rows = []
    for name in MODELS:
        config = load_model_config(name)
        names = create_extractor(config.feature_set).names
        normalizer = FeatureNormalizer(names)
        rng = np.random.default_rng(0)
        normalizer.update(torch.from_numpy(rng.normal(size=(1, 500, len(names))).astype(np.float32)),
                          torch.ones(1, 500, dtype=torch.bool))
        model = config.build(len(names), seed=0).eval()
        window = _Window(model, normalizer).eval()
        frames = rng.normal(size=(frames_per_window, len(names))).astype(np.float32)

        def torch_call(x: np.ndarray) -> None:
            with torch.inference_mode():
                window(torch.from_numpy(x))

        row = {"model": name, "feature_set": config.feature_set, "parameters": sum(p.numel() for p in model.parameters()),
               "torch_ms": times_ms(lambda: torch_call(frames), args.repeats)}
        try:
            onnx = OnnxForward(model, normalizer, len(names))
            row["onnxruntime_ms"] = times_ms(lambda: onnx(frames), args.repeats)
        except OnnxExportError as error:
            row["onnxruntime_ms"], row["onnx_note"] = [], str(error)[:200]
        rows.append(row)
    reference = float(np.median(next(r for r in rows if r["model"] == "lakomkin_rnn")["torch_ms"]))
    lines = [f"# Model forward per {args.window_s:g} s window ({frames_per_window} frames), one thread",
             "", "| model | features | parameters | PyTorch median / p99 (ms) | onnxruntime median / p99 (ms) | "
             "ratio to the RNN's PyTorch median (best backend) |", "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        cells = {}
        for backend in ("torch_ms", "onnxruntime_ms"):
            values = row[backend]
            cells[backend] = (f"{np.median(values):.2f} / {np.percentile(values, 99):.2f}" if values else "–")
        best = min(float(np.median(row[b])) for b in ("torch_ms", "onnxruntime_ms") if row[b])
        row["ratio_to_reference"] = round(best / reference, 3)
        lines.append(f"| {row['model']} | {row['feature_set']} | {row['parameters']:,} | {cells['torch_ms']} | "
                     f"{cells['onnxruntime_ms']} | {row['ratio_to_reference']:.2f} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_forward.md").write_text(text, encoding="utf-8")
    (args.out / "model_forward.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
