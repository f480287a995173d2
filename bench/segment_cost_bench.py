"""Training cost per spectrogram segment of the segment models, at the paper's width and at the `cpu` width.

The Latif 2020 experiments train on 256-frame segments (``config/models/*.yaml``); their `cpu` size halves
every width (``training/experiments/latif2020_table1_cpu.yaml``). This bench times one optimiser step
(forward, cross-entropy, backward, Adam) on a batch of ``--batch`` random 128-band segments, one thread,
for each model at both widths, and the forward alone in evaluation mode. It reports the median ms per
segment and the ratio to the proposed model at the paper's width in the same run (other work on the
machine inflates the absolute figures, less so the ratios).

    python bench/segment_cost_bench.py --out out/bench            (make bench)
"""

from __future__ import annotations

import argparse
import json
import pathlib

from timing import median_ms

HALF = {  # the `cpu` size's widths (training/experiments/latif2020_table1_cpu.yaml)
    "latif_cnn": {"channels": [16, 32, 32], "lstm_units": 64, "dense_units": 64},
    "latif_cnn_lstm": {"channels": [16, 32, 32], "lstm_units": 64, "dense_units": 64},
    "densenet": {"stem_channels": 16, "growth": 8, "lstm_units": 64, "dense_units": 500},
    "densenet_lstm": {"stem_channels": 16, "growth": 8, "lstm_units": 64, "dense_units": 500},
    "densenet_lstm_highway": {"stem_channels": 24, "growth": 12, "lstm_units": 64, "dense_units": 64},
}
REFERENCE = ("densenet_lstm_highway", "paper")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from ser_robot.models import build_model, load_model_config

    torch.set_num_threads(1)
    rows = []
    for name, half in HALF.items():
        for width, hyper in (("paper", {}), ("cpu", half)):
            config = load_model_config(name)
            model = build_model(name, 128, "categorical", seed=0, **{**config.hyper, **hyper})
            frames = model.hyper["segment_frames"]
            x = torch.randn(args.batch, frames, 128)
            lengths = torch.full((args.batch,), frames)
            labels = torch.randint(0, model.num_outputs, (args.batch,))
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

            def step() -> None:
                model.train()
                out = model.training_output(x, lengths)
                loss = torch.nn.functional.cross_entropy(out.logits, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            def forward() -> None:
                model.eval()
                with torch.inference_mode():
                    model.segment_logits(x)

            rows.append({"model": name, "width": width, "segment_frames": frames,
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "train_ms_per_segment": median_ms(step, args.repeats) / args.batch,
                         "forward_ms_per_segment": median_ms(forward, args.repeats) / args.batch})
    reference = next(r for r in rows if (r["model"], r["width"]) == REFERENCE)["train_ms_per_segment"]
    lines = [f"# Training cost per segment (batch {args.batch}, one thread, median of {args.repeats})", "",
             "| model | width | parameters | train step (ms / segment) | forward (ms / segment) | "
             "train ratio to the proposed model at the paper's width |", "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        row["train_ratio_to_reference"] = round(row["train_ms_per_segment"] / reference, 3)
        lines.append(f"| {row['model']} | {row['width']} | {row['parameters']:,} | {row['train_ms_per_segment']:.1f} | "
                     f"{row['forward_ms_per_segment']:.1f} | {row['train_ratio_to_reference']:.2f} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "segment_cost.md").write_text(text, encoding="utf-8")
    (args.out / "segment_cost.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
