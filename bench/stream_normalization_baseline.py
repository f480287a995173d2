"""Does speaker (stream) normalisation carry a model to voices, engines and languages it never heard?

The functionals baseline (``ser_robot.eval.functionals_baseline``: logistic regression on utterance
functionals of the eGEMAPS-like frames, after the level normaliser) trained on the diverse corpus
without its held-out sets, scored on each held-out set with:

- ``global``: the training population's statistics (what the shipped model did before);
- ``oracle``: each test speaker's own statistics over all its utterances (the ceiling);
- ``causal P``: each test speaker as one stream, utterances in manifest order, each scored with the
  running statistics of the ones before it, warm-started from the population's weighted as ``P``
  frames (``StreamNormalizer``: what the inference node does).

    python bench/stream_normalization_baseline.py --manifest out/corpora/synth_diverse_48x20_s0/corpus/manifest.jsonl \\
        --out docs/results/stream_normalization

Writes ``README.md`` (the table, command, date, machine) and ``results.csv`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser_robot.data.manifest import read_manifest  # noqa: E402
from ser_robot.eval.functionals_baseline import FunctionalsBaseline, utterance_frames  # noqa: E402
from ser_robot.metrics import unweighted_average_recall  # noqa: E402

HELD_OUT = {  # name -> rule on an utterance (the default model's held-out sets)
    "held-out voices (en01)": lambda u: u.session == "en01",
    "held-out engine (flite)": lambda u: u.extra.get("engine") == "flite",
    "held-out language (de)": lambda u: u.extra.get("language") == "de",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=pathlib.Path, required=True, help="a diverse synthetic corpus")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--priors", type=float, nargs="+", default=[300, 500, 1000, 3000])
    args = parser.parse_args()
    started, clock = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    manifest = list(read_manifest(args.manifest))
    frames = utterance_frames(manifest, "egemaps", progress=True)
    from ser_robot.features.egemaps import EGEMAPS_NAMES

    voiced = next(i for i, name in enumerate(EGEMAPS_NAMES) if name.startswith("F0"))
    tests = {name: [i for i, u in enumerate(manifest) if rule(u)] for name, rule in HELD_OUT.items()}
    held = {i for indices in tests.values() for i in indices}
    train = [i for i in range(len(manifest)) if i not in held]

    def part(indices: list[int]) -> tuple[list[np.ndarray], list[str], list[str]]:
        return [frames[i] for i in indices], [manifest[i].label for i in indices], [manifest[i].speaker for i in indices]

    rows = []
    arms = [("global", FunctionalsBaseline(voiced, "global"))]
    arms += [(f"causal, prior {prior:g} frames", FunctionalsBaseline(voiced, "speaker", prior_frames=prior))
             for prior in args.priors]
    for arm, baseline in arms:
        baseline.fit(*part(train))
        rows.append({"normalisation": arm, **baseline.scores({name: part(idx) for name, idx in tests.items()})})
    # the ceiling: each test speaker's statistics over all its utterances, mapped as in training
    oracle = FunctionalsBaseline(voiced, "speaker").fit(*part(train))
    scores = {}
    for name, indices in tests.items():
        test_frames, labels, speakers = part(indices)
        mapped = []
        for speaker in sorted(set(speakers)):
            own = np.concatenate([f for f, s in zip(test_frames, speakers) if s == speaker])
            mean, std = own.mean(axis=0), np.maximum(own.std(axis=0), 1e-3)
            mapped += [(i, (f - mean) / std * oracle.std + oracle.mean)
                       for i, (f, s) in enumerate(zip(test_frames, speakers)) if s == speaker]
        mapped = [f for _, f in sorted(mapped, key=lambda item: item[0])]
        global_arm = FunctionalsBaseline(voiced, "global")
        global_arm.scaler, global_arm.classifier = oracle.scaler, oracle.classifier
        predicted = global_arm.predict(mapped, speakers)
        scores[name] = float(unweighted_average_recall(labels, predicted, labels=list(oracle.classifier.classes_)))
    rows.append({"normalisation": "oracle (each speaker's own, all utterances)", **scores})

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "results.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    names = list(HELD_OUT)
    lines = ["# Speaker (stream) normalisation and held-out voices, engines, languages", "",
             f"- Command: `python bench/stream_normalization_baseline.py --manifest {args.manifest} --out {args.out}`",
             f"- Date: {started:%Y-%m-%d %H:%M} UTC; {time.monotonic() - clock:.0f} s on {platform.node()} "
             "(2 cores, other jobs beside it).",
             f"- Corpus: {len(manifest)} utterances of the `diverse` voice set (**synthetic corpus**); trained on "
             f"{len(train)} utterances of {len({manifest[i].speaker for i in train})} voices, none of the held-out sets'.",
             "- Model: the functionals baseline (logistic regression on the mean, std and voiced mean of the 34 "
             "eGEMAPS-like LLDs after the level normaliser); UAR, chance 25 %.", "",
             "| normalisation | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {row['normalisation']} | " + " | ".join(f"{100 * row[n]:.1f} %" for n in names) + " |"
              for row in rows]
    lines += ["", "Causal: each test speaker is one stream, utterances in manifest order (sentence by sentence, the "
              "four classes of a sentence in turn), each scored before it is added to the statistics.", ""]
    (args.out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
