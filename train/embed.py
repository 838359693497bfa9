"""Fitting the speech-embedding member (digitd.model.EmbedMember).

Rows per clip: the clip as recorded, its trimmed word (the daemon hands over endpointed
utterances, between the two), and `noisy` copies with a real background recording from the
training side of the speaker split at 5-20 dB. Classes: the digits plus OTHER, which learns
from real non-digit words and real noise (training-side speakers and clips only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from digitd.corpora import CORPORA, corpus_clips, is_dev
from digitd.embedding import SpeechEmbedding, default_path
from digitd.features import DEFAULT_PARAMS, trim
from digitd.model import OTHER, EmbedMember
from digitd.runtime import compile_estimator, score
from train.augment import add_noise
from train.data import Record
from train.parallel import map_records

NOISY_SNR_DB = (5.0, 20.0)


@dataclass
class EmbedFit:
    member: EmbedMember
    oof_digit_conf: np.ndarray  # out-of-fold confidence of true digits (held-out speakers)
    oof_other_conf: np.ndarray  # the same for OTHER clips (words, noise)
    n_rows: int


def negative_records(folders: Sequence[str], hold_out_dev: bool = False) -> list[Record]:
    """Training-side clips of non-digit word and noise folders, labelled OTHER (without the dev
    slice's speakers and noise clips with `hold_out_dev`)."""
    out = []
    for f in folders:
        for c in corpus_clips(f, CORPORA.get(str(f).rstrip("/").rsplit("/", 1)[-1])):
            if c.kind != "digit" and not c.unseen and not (hold_out_dev and is_dev(c.speaker)):
                out.append(Record(OTHER, c.speaker, 0, "extra", str(c.path)))
    return out


def noise_bank(records: Sequence[Record], seconds: float = 120.0, seed: int = 0) -> np.ndarray:
    """Real background recordings (the OTHER records whose folder is noise), concatenated."""
    waves = [r.load() for r in records if r.label == OTHER and r.speaker.startswith("noise")]
    if not waves:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(waves))
    bank = np.concatenate([waves[i] for i in order])
    return bank[: int(seconds * 8000)] if len(bank) > seconds * 8000 else bank


def clip_rows(rec: Record, frontend: SpeechEmbedding, bank: np.ndarray, noisy: int, seed: int) -> list[np.ndarray]:
    x = rec.load()
    rows = [frontend.pooled(x), frontend.pooled(trim(x, DEFAULT_PARAMS))]
    if noisy and len(bank) > len(x) and rec.label != OTHER:
        rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(rec.name.encode()).digest()[:4], "little")])
        for _ in range(noisy):
            rows.append(frontend.pooled(add_noise(x, "recorded", float(rng.uniform(*NOISY_SNR_DB)), rng, bank)))
    return rows


def _estimator(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()),
                     ("clf", LogisticRegression(C=C, class_weight="balanced", max_iter=3000))])


def embed_features(records: Sequence[Record], *, noisy: int = 1, seed: int = 0, jobs: int = 2,
                   frontend_path: Path | None = None) -> list[list[np.ndarray]]:
    """Per record: [as recorded, trimmed, noisy copies...] pooled embeddings by the front end
    at `frontend_path` (default: the shipped one)."""
    frontend = SpeechEmbedding.load(frontend_path)
    bank = noise_bank([r for r in records if r.label == OTHER], seed=seed)
    return map_records(list(records), lambda r: clip_rows(r, frontend, bank, noisy, seed), jobs=jobs,
                       label="speech embeddings")


def _rows(feats: Sequence[Sequence[np.ndarray]], records: Sequence[Record]) -> tuple[np.ndarray, ...]:
    X = np.asarray([v for rows in feats for v in rows], dtype=np.float32)
    y = np.asarray([r.label for r, rows in zip(records, feats) for _ in rows])
    g = np.asarray([r.speaker for r, rows in zip(records, feats) for _ in rows])
    first = np.asarray([i == 0 for rows in feats for i in range(len(rows))])  # the clip as recorded
    return X, y, g, first


def fit_lr(X: np.ndarray, y: np.ndarray, classes: Sequence[str], C: float) -> tuple[Any, list[int]]:
    """The fitted pipeline and the column order digits..., OTHER."""
    est = _estimator(C).fit(X, y)
    return est, [list(est.classes_).index(c) for c in list(classes) + [OTHER]]


def confidence(pe: np.ndarray, power: float = 1.0) -> np.ndarray:
    """This member's confidence alone (the others assumed to agree with it)."""
    return (pe[:, :-1] / pe[:, :-1].sum(axis=1, keepdims=True)).max(axis=1) * (1.0 - pe[:, -1]) ** power


def fit_embed(records: Sequence[Record], classes: Sequence[str], *, C: float = 0.03, weight: float = 0.5,
              power: float = 1.0, noisy: int = 1, seed: int = 0, jobs: int = 2, folds: int = 5,
              feats: Sequence[Sequence[np.ndarray]] | None = None, frontend: Path | None = None) -> EmbedFit:
    """Fit on every record (digits with their labels, negatives labelled OTHER); out-of-fold
    confidences come from speaker-grouped folds (none with folds < 2), for picking the reject
    threshold honestly. `feats` (from embed_features, same order) skips computing the embeddings
    again. `frontend`: the speech embedding's file (default: the shipped one; a fine-tuned one's
    member learns its pooled vectors, which a user profile adapts: digitd/profile.py)."""
    from sklearn.model_selection import GroupKFold

    if feats is None:
        feats = embed_features(records, noisy=noisy, seed=seed, jobs=jobs, frontend_path=frontend)
    X, y, g, first = _rows(feats, records)
    digit_conf, other_conf = [np.zeros(0)], [np.zeros(0)]
    for tr, va in (GroupKFold(n_splits=folds).split(X, y, g) if folds > 1 else []):
        va = va[first[va]]
        est, cols = fit_lr(X[tr], y[tr], classes, C)
        conf = confidence(est.predict_proba(X[va])[:, cols], power)
        is_digit = y[va] != OTHER
        digit_conf.append(conf[is_digit])
        other_conf.append(conf[~is_digit])
    est, cols = fit_lr(X, y, classes, C)
    rt = compile_estimator(est)
    rt["coef"], rt["intercept"] = rt["coef"][cols], rt["intercept"][cols]
    probe = X[: min(50, len(X))]
    if not np.allclose(score(rt, probe), est.predict_proba(probe)[:, cols], atol=1e-6):
        raise RuntimeError("the compiled embedding classifier disagrees with scikit-learn")
    member = EmbedMember(SpeechEmbedding.load(frontend), rt, list(classes) + [OTHER], weight, power,
                         source=frontend if frontend is not None else default_path())
    return EmbedFit(member, np.concatenate(digit_conf), np.concatenate(other_conf), len(X))


def loso_proba(feats: Sequence[Sequence[np.ndarray]], records: Sequence[Record], train: np.ndarray, test: np.ndarray,
               classes: Sequence[str], C: float) -> np.ndarray:
    """(len(test), classes + 1): fitted on the `train` records' rows, scored on the `test`
    records as recorded (one LOSO fold)."""
    tr_recs = [records[i] for i in train]
    X, y, _, _ = _rows([feats[i] for i in train], tr_recs)
    est, cols = fit_lr(X, y, classes, C)
    Xte = np.asarray([feats[i][0] for i in test], dtype=np.float32)
    return est.predict_proba(Xte)[:, cols]


def describe(fit: EmbedFit, threshold: float) -> dict[str, Any]:
    """Out-of-fold (held-out training speakers) rejection at `threshold`, for the model card."""
    return {"oof_digits_rejected": float(np.mean(fit.oof_digit_conf < threshold)),
            "oof_other_rejected": float(np.mean(fit.oof_other_conf < threshold)),
            "n_rows": fit.n_rows}
