"""Attack and adversarial-training cost on the CPU: seconds per utterance for FGSM and PGD-10 against the shipped
default model, and one adversarial training step against a clean one, in the same run.

- Attacks: ``--utterances`` 3 s utterances of random normalised eGEMAPS-like frames (the time does not depend
  on the values) through ``models/default/model.pt`` (the Lakomkin RNN), white-box on its inputs (threat domain
  ``features``), one thread; the reference is one clean forward of the same batch.
- Adversarial training: one optimiser step of the Lakomkin CNN on a batch of 32 such utterances, clean, with
  vanilla and with similarity-based adversarial training (Ren et al.; one FGSM twin per batch), as ratios to
  the clean step.

    python bench/attack_bench.py --out out/bench            (make bench)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib

from timing import median_ms

REPO = pathlib.Path(__file__).resolve().parent.parent


def _seconds(call, repeats: int) -> float:
    return median_ms(call, repeats) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    parser.add_argument("--model", type=pathlib.Path, default=REPO / "models/default/model.pt")
    parser.add_argument("--utterances", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from ser_robot.adversarial import ThreatModel, feature_loss, fgsm, pgd
    from ser_robot.inference.model import EmotionModel
    from ser_robot.models import build_model
    from ser_robot.train.adversarial import adversarial_step_loss
    from ser_robot.train.config import AdversarialConfig

    torch.set_num_threads(1)
    served = EmotionModel(args.model, "cpu", backend="torch")
    model = served.model.eval()
    frames = torch.randn(args.utterances, 300, model.num_features)
    lengths = torch.full((args.utterances,), 300)
    labels = torch.zeros(args.utterances, dtype=torch.int64)
    loss = feature_loss(model, labels, lengths)
    threat = ThreatModel("features", 0.1)

    def forward() -> None:
        with torch.no_grad():
            model(frames, lengths)

    rows = [{"what": "clean forward (reference)", "seconds": _seconds(forward, args.repeats)}]
    rows.append({"what": "FGSM", "seconds": _seconds(lambda: fgsm(loss, frames, threat), args.repeats)})
    rows.append({"what": "PGD-10", "seconds": _seconds(lambda: pgd(loss, frames, threat, steps=10), args.repeats)})
    for row in rows:
        row["seconds_per_utterance"] = row["seconds"] / args.utterances
        row["ratio_to_reference"] = round(row["seconds"] / rows[0]["seconds"], 2)

    cnn = build_model("lakomkin_cnn", model.num_features, "categorical", seed=0)
    optimizer = torch.optim.Adam(cnn.parameters(), lr=1e-4)
    batch = torch.randn(32, 300, model.num_features)
    batch_lengths = torch.full((32,), 300)
    batch_labels = torch.randint(0, 4, (32,))
    steps = []
    for kind in ("none", "vanilla", "similarity"):
        config = AdversarialConfig(kind=kind, start_iteration=0)

        def step() -> None:
            cnn.train()
            per_example = adversarial_step_loss(cnn, cnn, batch, batch_lengths, batch_labels, config, 0,
                                                contextlib.nullcontext)
            optimizer.zero_grad()
            per_example.mean().backward()
            optimizer.step()

        steps.append({"training": kind, "seconds_per_step": _seconds(step, args.repeats)})
    for row in steps:
        row["ratio_to_clean"] = round(row["seconds_per_step"] / steps[0]["seconds_per_step"], 2)

    lines = [f"# Attack cost against {args.model.name} ({served.model_id}), {args.utterances} utterances of 3 s, "
             "one thread", "", "| attack | s per utterance | ratio to a clean forward |", "|---|---:|---:|"]
    lines += [f"| {r['what']} | {r['seconds_per_utterance']:.4f} | {r['ratio_to_reference']:.1f} |" for r in rows]
    lines += ["", "# Adversarial training step (Lakomkin CNN, batch 32 x 3 s, one thread)", "",
              "| training | s per step | ratio to clean training |", "|---|---:|---:|"]
    lines += [f"| {r['training']} | {r['seconds_per_step']:.3f} | {r['ratio_to_clean']:.2f} |" for r in steps]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attack_cost.md").write_text(text, encoding="utf-8")
    (args.out / "attack_cost.json").write_text(json.dumps({"attacks": rows, "training": steps}, indent=2) + "\n",
                                               encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
