"""Training of SSAD's purify network (Su and Lee, seeds/003, 2.1 and 3.1).

:func:`train_purifier` learns a :class:`~ser_robot.models.ssad.Purifier` on the training utterances of a fold
against a frozen, trained feature extractor F_phi (a checkpoint of any model on the same log-Mel frames; the
paper fine-tunes VGG-16, here ``ren_vgg16``): every batch gets fresh self-supervised adversaries (eq. 1-3),
the purifier minimises ``alpha L_adv + beta L_pix + gamma L_feat`` (eq. 7) and the discriminator its own loss;
Adam at ``lr`` (paper: 1e-3) for both, early stopping on the validation utterances' purifier loss with
``patience`` (paper: 5). The purifier works in F_phi's normalised frame space: its checkpoint carries that
normaliser, so it can front any model on the same feature set (:class:`~ser_robot.adversarial.ssad.PurifiedModel`).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from dataclasses import dataclass
from typing import Any

import torch

from ser_robot.adversarial.detector import embeddings
from ser_robot.adversarial.ssad import ssa_adversaries, ssad_losses
from ser_robot.config_io import from_mapping
from ser_robot.data.splits import Fold
from ser_robot.errors import CheckpointError, TrainError
from ser_robot.features.sets import create_extractor
from ser_robot.models.ssad import Discriminator, Purifier, SsadConfig
from ser_robot.train.checkpoint import load_model, to_plain
from ser_robot.train.data import load_waveform

__all__ = ["PurifierResult", "load_purifier", "train_purifier"]

log = logging.getLogger(__name__)


@dataclass
class PurifierResult:
    """The trained ``purifier`` (eval mode), its ``history`` (one dict per epoch) and its checkpoint path."""

    purifier: Purifier
    history: list[dict[str, Any]]
    checkpoint: pathlib.Path | None


def _frames(fold_part: Any, extractor: torch.nn.Module, normalizer: Any, sample_rate: int,
            frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each utterance's first ``frames`` normalised frames, zero-padded: ``((n, frames, bands), lengths (n,))``."""
    rows, lengths = [], []
    with torch.no_grad():
        for utterance in fold_part:
            raw = extractor(load_waveform(str(utterance.path), sample_rate)[None])[0][:frames]
            rows.append(torch.nn.functional.pad(normalizer(raw[None])[0], (0, 0, 0, frames - raw.shape[0])))
            lengths.append(raw.shape[0])
    return torch.stack(rows), torch.tensor(lengths)


def train_purifier(fold: Fold, feature_checkpoint: str | pathlib.Path, config: SsadConfig, *, epochs: int = 50,
                   batch_size: int = 16, lr: float = 1e-3, patience: int = 5, frames: int = 373, seed: int = 0,
                   out_dir: str | pathlib.Path | None = None) -> PurifierResult:
    """Train a purifier on ``fold.train`` against the frozen model of ``feature_checkpoint`` (module docstring);
    writes ``purifier.pt`` into ``out_dir`` when given."""
    model, normalizer, checkpoint = load_model(feature_checkpoint, map_location="cpu")
    feature_set = str(checkpoint["features"]["set"])
    extractor = create_extractor(feature_set)
    if len(extractor.names) != config.bands:
        raise TrainError(f"the purifier has {config.bands} bands, but {feature_checkpoint} was trained on "
                         f"{feature_set!r} with {len(extractor.names)}; use a 64-band log-Mel model")
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)

    def feature(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return embeddings(model, x, lengths)[1]

    sample_rate = int(checkpoint["sample_rate"])
    train_x, train_len = _frames(fold.train, extractor, normalizer, sample_rate, frames)
    val_x, val_len = _frames(fold.validation or fold.train, extractor, normalizer, sample_rate, frames)
    torch.manual_seed(seed)
    purifier, discriminator = Purifier(config), Discriminator(config)
    optimizer_p = torch.optim.Adam(purifier.parameters(), lr=lr)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    bad = 0
    for epoch in range(epochs):
        purifier.train()
        order = torch.randperm(train_x.shape[0], generator=generator)
        sums = {"pix": 0.0, "feat": 0.0, "adv": 0.0, "total": 0.0, "discriminator": 0.0}
        for start in range(0, len(order), batch_size):
            rows = order[start: start + batch_size]
            x, lengths = train_x[rows], train_len[rows]
            adversarial = ssa_adversaries(feature, x, lengths, config.step_size, config.budget, generator)
            losses = ssad_losses(purifier, discriminator, feature, x, adversarial, lengths, config)
            optimizer_p.zero_grad()
            losses["total"].backward()
            optimizer_p.step()
            optimizer_d.zero_grad()
            losses["discriminator"].backward()
            optimizer_d.step()
            for name in sums:
                sums[name] += float(losses[name].detach()) * len(rows)
        purifier.eval()
        adversarial = ssa_adversaries(feature, val_x, val_len, config.step_size, config.budget,
                                      torch.Generator().manual_seed(seed))
        with torch.no_grad():
            validation = float(ssad_losses(purifier, discriminator, feature, val_x, adversarial, val_len,
                                           config)["total"])
        record = {"epoch": epoch + 1, **{k: v / len(order) for k, v in sums.items()}, "validation_total": validation}
        history.append(record)
        log.info("purifier epoch %d: total %.4f, validation %.4f", epoch + 1, record["total"], validation)
        if best is None or validation < best[0]:
            best, bad = (validation, {k: v.clone() for k, v in purifier.state_dict().items()}), 0
        else:
            bad += 1
            if bad >= patience:
                break
    assert best is not None
    purifier.load_state_dict(best[1])
    purifier.eval()
    path = None
    if out_dir is not None:
        path = pathlib.Path(out_dir) / "purifier.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(to_plain({"kind": "ssad_purifier", "config": dataclasses.asdict(config),
                             "state": purifier.state_dict(), "feature_set": feature_set,
                             "normalizer": checkpoint["features"]["normalizer"],
                             "feature_checkpoint": str(feature_checkpoint), "history": history}), path)
    return PurifierResult(purifier, history, path)


def load_purifier(path: str | pathlib.Path) -> tuple[Purifier, dict]:
    """The purify network of a ``purifier.pt`` (eval mode, CPU) and the checkpoint's content; raises
    :class:`CheckpointError` naming the file when it is missing, unreadable or not a purifier's."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"purifier checkpoint {path} not found (train one with "
                              "ser_robot.train.purifier.train_purifier)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a corrupt or foreign file: one line, never a traceback
        raise CheckpointError(f"purifier checkpoint {path} cannot be read: {type(error).__name__}") from None
    if not isinstance(data, dict) or data.get("kind") != "ssad_purifier":
        raise CheckpointError(f"{path} is not an SSAD purifier checkpoint (kind {data.get('kind')!r} "
                              "expected 'ssad_purifier')" if isinstance(data, dict) else
                              f"{path} is not an SSAD purifier checkpoint")
    purifier = Purifier(from_mapping(SsadConfig, data["config"], f"purifier checkpoint {path}"))
    purifier.load_state_dict(data["state"])
    return purifier.eval(), data
