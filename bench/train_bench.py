"""Training throughput: utterances per second with the full augmentation chain and feature extraction.

Trains each model for ``--epochs`` epochs on one leave-one-speaker-out fold of a small synthetic
corpus (generated and cached under ``--cache``), with the Lakomkin augmentation chain fed by a
noise bank and a room-impulse-response bank (training conditions only), and without
augmentation as the reference in the same run; then MTL-AUG (``config/train/mtl_aug.yaml``, 7.5 s
segments) as its STL baseline without augmentation and with every task and augmentation. Reports the trainer's measured training
utterances per second and what that means for one epoch of an IEMOCAP-sized corpus (5,531
utterances). Runs on CUDA when present (``--device auto``), else on the CPU.

    python bench/train_bench.py --out out/bench
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform

IEMOCAP_UTTERANCES = 5531


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("out/bench/train_cache"))
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--sentences", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch

    from ser_robot.acoustics import build_noise_bank, build_rir_bank
    from ser_robot.data.splits import leave_one_speaker_out
    from ser_robot.data.synth.corpus import generate_corpus
    from ser_robot.train.config import load_train_config
    from ser_robot.train.trainer import train

    corpus = args.cache / f"synth_{args.speakers}x{args.sentences}"
    manifest = generate_corpus(corpus, speakers=args.speakers, sentences=args.sentences, seed=0, progress=False)
    noise = build_noise_bank(args.cache / "noise_bank", seconds_per_clip=10.0, clips_per_category=4)
    rooms = build_rir_bank(args.cache / "rir_bank", count=16)
    fold = leave_one_speaker_out(manifest, validation="partner")[0]
    rows = []
    for model in ("lakomkin_rnn", "lakomkin_cnn"):
        for augmentation in ("none", "lakomkin"):
            config = load_train_config("config/train/lakomkin.yaml", {
                "model": model, "epochs": args.epochs, "device": args.device, "early_stop_patience": 100,
                "augmentation": {"kind": augmentation, "noise_bank": str(noise.root), "rir_bank": str(rooms.root),
                                 "p_tempo": 1.0, "p_gain": 1.0, "p_noise": 1.0, "p_ir": 1.0}})
            result = train(config, fold, progress=False)
            rows.append({"model": model, "augmentation": augmentation, "utterances_per_s": round(result.throughput, 2),
                         "iemocap_epoch_s": round(IEMOCAP_UTTERANCES / result.throughput, 1)})
            print(f"{model:13s} augmentation={augmentation:8s} {result.throughput:8.1f} utt/s  "
                  f"IEMOCAP-sized epoch {IEMOCAP_UTTERANCES / result.throughput:8.1f} s", flush=True)
    for name, changes in (("mtl_aug STL, no augmentation", {
            "model_hyper": {"augmentation_task": False, "reconstruction_task": False, "centre_weight": 0.0},
            "multitask": {"augmentations": []}}), ("mtl_aug MTL-AUG, all augmentations", {})):
        config = load_train_config("config/train/mtl_aug.yaml", {"epochs": args.epochs, "device": args.device,
                                                                 **changes})
        result = train(config, fold, progress=False)  # 7.5 s segments, SpecAugment and mixup on the fly
        rows.append({"model": name, "augmentation": "multitask" if not changes else "none",
                     "utterances_per_s": round(result.throughput, 2),
                     "iemocap_epoch_s": round(IEMOCAP_UTTERANCES / result.throughput, 1)})
        print(f"{name:36s} {result.throughput:8.1f} utt/s  IEMOCAP-sized epoch "
              f"{IEMOCAP_UTTERANCES / result.throughput:8.1f} s", flush=True)
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else \
        f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    report = {"device": device, "training_utterances": len(fold.train), "epochs": args.epochs, "runs": rows,
              "note": "Lakomkin: augmentation = tempo, gain, noise and room IR each with probability 1 (worst case); "
                      "mtl_aug: the epoch loop only (the speed copies are rendered once before it)"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"device: {device}; written {args.out / 'train_bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
