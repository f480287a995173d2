"""Where a training epoch's time goes, per stage, for the Lakomkin RNN and CNN, clean and augmented.

Runs the trainer's steps by hand on one fold of a synthetic corpus (generated and cached under
``--cache``) and times each stage of every batch: loading (audio read + padding, or the bank's
rows), augmentation (the Lakomkin chain on the waveforms), features (eGEMAPS extraction and
normalisation), forward, backward (with value clipping) and the optimiser step. Configurations,
all measured in the same run on the same batches:

- ``online``: today's path, augmentation and features per batch;
- ``bank``: features of precomputed renditions (:mod:`ser_robot.train.bank`, K versions);
- for the RNN, ``packed`` (the GRU through ``PackedSequence``, as before) against ``padded``
  (the exact padded GRU now in :class:`~ser_robot.models.lakomkin.LakomkinRNN`).

Also reports the time to build a bank, in seconds per hour of audio. Writes ``breakdown.md``
and ``breakdown.json`` into ``--out``.

    python bench/epoch_breakdown.py --out docs/results/epoch_breakdown
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections import defaultdict

STAGES = ("load", "augmentation", "features", "forward", "backward", "optimiser")


def _packed_forward(model, features, lengths):
    """The RNN as it ran before: the bidirectional GRU on a packed sequence (the reference)."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from ser_robot.models.masking import lengths_to_mask, masked_mean

    packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
    encoded, _ = model.gru(packed)
    encoded, _ = pad_packed_sequence(encoded, batch_first=True, total_length=features.shape[1])
    pooled = masked_mean(encoded, lengths_to_mask(lengths, features.shape[1]))
    return model.output(model.dropout(pooled))


def run_epoch(model_name, augmentation, mode, rnn_path, fold, config, bank, batches_limit, threads):
    import numpy as np
    import torch

    from ser_robot.features.sets import create_extractor
    from ser_robot.models import build_model
    from ser_robot.train.bank import BankTrainingSet, collate_features
    from ser_robot.train.data import SortaGradBatchSampler, UtteranceDataset, collate
    from ser_robot.train.features import BatchFeaturizer, build_augmentation, fit_normalizer, frame_mask
    from ser_robot.train.trainer import batch_generator

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    extractor = create_extractor(config.feature_set)
    train_set = UtteranceDataset(fold.train, None, 16000, cache=True)
    chain = build_augmentation(config.augmentation) if augmentation != "none" else None
    stat_loader = torch.utils.data.DataLoader(train_set, batch_size=32, collate_fn=collate)
    normalizer = fit_normalizer(BatchFeaturizer(extractor), stat_loader)
    featurizer = BatchFeaturizer(extractor, normalizer, chain)
    model = build_model(model_name, num_features=len(extractor.names), num_classes=4, head="categorical")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    sampler = SortaGradBatchSampler(train_set.durations, 32, seed=0, sortagrad=False)
    plan = sampler.global_batches(1)[:batches_limit]
    source = BankTrainingSet(bank, train_set, seed=0) if mode == "bank" else train_set
    if mode == "bank":
        source.set_epoch(1)
    else:
        for index in range(len(train_set)):  # audio decoding is the same in both modes: keep it out
            train_set.waveform(index)
    times = defaultdict(float)
    utterances = 0
    model.train()
    for step, indices in enumerate(plan):
        t0 = time.perf_counter()
        if mode == "bank":
            batch = collate_features([source[i] for i in indices])
        else:
            batch = collate([source[i] for i in indices])
        t1 = time.perf_counter()
        times["load"] += t1 - t0
        if mode == "bank":
            lengths = batch.lengths
            feats = normalizer(batch.features) * frame_mask(lengths, batch.features.shape[1])[..., None]
            times["features"] += time.perf_counter() - t1
        else:
            waves, lengths = batch.waveforms, batch.lengths
            if chain is not None:
                result = chain(waves, lengths, generator=batch_generator(0, 1, step))
                waves, lengths = result.x, result.lengths
            t2 = time.perf_counter()
            times["augmentation"] += t2 - t1
            out = featurizer(waves, lengths)
            feats, lengths = out.features, out.lengths
            times["features"] += time.perf_counter() - t2
        t3 = time.perf_counter()
        if rnn_path == "packed":
            outputs = _packed_forward(model, feats, lengths)
        else:
            outputs = model(feats, lengths)
        loss = torch.nn.functional.cross_entropy(outputs, batch.labels)
        t4 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
        t5 = time.perf_counter()
        optimizer.step()
        t6 = time.perf_counter()
        times["forward"] += t4 - t3
        times["backward"] += t5 - t4
        times["optimiser"] += t6 - t5
        utterances += len(indices)
    total = sum(times.values())
    return {"model": model_name, "augmentation": augmentation, "mode": mode, "rnn_path": rnn_path,
            "batches": len(plan), "utterances": utterances, "seconds": round(total, 3),
            "utterances_per_s": round(utterances / total, 2),
            "stages_s": {k: round(times[k], 3) for k in STAGES},
            "stages_pct": {k: round(100 * times[k] / total, 1) for k in STAGES},
            "mean_frames": float(np.mean([train_set.durations[i] for b in plan for i in b])) * 100}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench/epoch_breakdown"))
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("out/bench/breakdown_cache"))
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--batches", type=int, default=6, help="batches timed per configuration")
    parser.add_argument("--versions", type=int, default=8, help="K of the bank")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one job per core)")
    args = parser.parse_args()

    import torch

    from ser_robot.acoustics import build_noise_bank, build_rir_bank
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.data.synth.corpus import generate_corpus
    from ser_robot.experiments.report import machine_info
    from ser_robot.train.bank import BankSpec, ensure_bank
    from ser_robot.train.config import load_train_config

    corpus = args.cache / f"synth_{args.speakers}x{args.sentences}"
    manifest = generate_corpus(corpus, speakers=args.speakers, sentences=args.sentences, seed=0, workers=2,
                               progress=False)
    noise = build_noise_bank(args.cache / "noise_bank", seconds_per_clip=10.0, clips_per_category=4)
    rooms = build_rir_bank(args.cache / "rir_bank", count=16)
    fold = leave_one_speaker_out(manifest, validation="partner")[0]
    rows, builds = [], []
    for augmentation in ("none", "lakomkin"):
        config = load_train_config("config/train/lakomkin.yaml", {
            "model": "lakomkin_rnn", "augmentation": {
                "kind": augmentation, "noise_bank": str(noise.root), "rir_bank": str(rooms.root),
                "versions": args.versions, "mode": "bank", "bank_dir": str(args.cache / "banks")}})
        spec = BankSpec.from_config(fold.train, config.augmentation, config.feature_set)
        started = time.perf_counter()
        bank = ensure_bank(spec, args.cache / "banks" / "timed", workers=1)
        seconds = time.perf_counter() - started
        hours = sum(u.duration_s for u in fold.train) / 3600
        builds.append({"augmentation": augmentation, "versions": spec.versions, "seconds": round(seconds, 1),
                       "audio_hours": round(hours, 4), "seconds_per_audio_hour": round(seconds / hours, 1),
                       "megabytes": round(bank.nbytes / 2**20, 1)})
        print(f"bank {augmentation:8s} K={spec.versions}: {seconds:.1f} s for {hours * 60:.1f} min of audio "
              f"-> {seconds / hours:.0f} s per audio hour", flush=True)
        for model in ("lakomkin_rnn", "lakomkin_cnn"):
            paths = ("packed", "padded") if model == "lakomkin_rnn" else ("-",)
            for mode in ("online", "bank"):
                for path in paths:
                    row = run_epoch(model, augmentation, mode, path, fold, config, bank, args.batches, args.threads)
                    rows.append(row)
                    print(f"{model:13s} {augmentation:8s} {mode:6s} {path:6s} {row['utterances_per_s']:7.1f} utt/s  "
                          + " ".join(f"{k} {v:4.1f}%" for k, v in row["stages_pct"].items()), flush=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_info(),
              "command": "python " + " ".join(sys.argv),
              "torch": torch.__version__, "threads": args.threads, "corpus": f"{args.speakers} speakers x "
              f"{args.sentences} sentences x 4 classes (synthetic)", "training_utterances": len(fold.train),
              "batches_per_configuration": args.batches, "rows": rows, "bank_builds": builds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "breakdown.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "breakdown.md").write_text(markdown(report))
    print(f"written {args.out / 'breakdown.md'}")
    return 0


def markdown(report: dict) -> str:
    """The breakdown as Markdown tables (stage shares, utterances per second, speed-ups)."""
    lines = [f"# Training epoch breakdown ({report['date']})", "",
             f"Machine: {report['machine'].get('cpu', '')}, {report['machine'].get('cpu_count')} cores; torch "
             f"{report['torch']}, {report['threads']} thread(s) per job. Corpus: {report['corpus']}, "
             f"{report['training_utterances']} training utterances; {report['batches_per_configuration']} batches of "
             "32 per configuration, the same batches for each, nothing else running. Command: "
             f"`{report['command']}`.", "",
             "| Model | Training | Mode | GRU | utt/s | " + " | ".join(STAGES) + " |",
             "|" + "---|" * (5 + len(STAGES))]
    for row in report["rows"]:
        lines.append(f"| {row['model']} | {row['augmentation']} | {row['mode']} | {row['rnn_path']} | "
                     f"{row['utterances_per_s']:.1f} | " + " | ".join(f"{row['stages_pct'][k]:.1f} %" for k in STAGES)
                     + " |")
    lines += ["", "Speed-up over today's path (online, packed GRU for the RNN), same batches:", "",
              "| Model | Training | Online (before) utt/s | Bank + padded utt/s | Speed-up |", "|---|---|---|---|---|"]
    for model in ("lakomkin_rnn", "lakomkin_cnn"):
        for augmentation in ("none", "lakomkin"):
            before = [r for r in report["rows"] if r["model"] == model and r["augmentation"] == augmentation
                      and r["mode"] == "online" and r["rnn_path"] in ("packed", "-")]
            after = [r for r in report["rows"] if r["model"] == model and r["augmentation"] == augmentation
                     and r["mode"] == "bank" and r["rnn_path"] in ("padded", "-")]
            if before and after:
                b, a = before[0]["utterances_per_s"], after[0]["utterances_per_s"]
                lines.append(f"| {model} | {augmentation} | {b:.1f} | {a:.1f} | {a / b:.1f}x |")
    lines += ["", "Bank builds (one process):", "", "| Training | K | seconds | audio (h) | s per audio hour | MB |",
              "|---|---|---|---|---|---|"]
    for build in report["bank_builds"]:
        lines.append(f"| {build['augmentation']} | {build['versions']} | {build['seconds']} | {build['audio_hours']} | "
                     f"{build['seconds_per_audio_hour']} | {build['megabytes']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
