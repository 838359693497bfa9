"""`digitd eval --unseen`: how the model does for people it never heard.

Every clip of the extra corpora whose speaker is on the unseen side of digitd.corpora's split
(never trained on, never tuned on), classified exactly as `digitd predict` does: digits for
accuracy, and digits, non-digit words and background noise for the open set at the reject
threshold the daemon uses.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from digitd.audio import load_wav
from digitd.corpora import NEAR_HOMOPHONES, Clip
from digitd.config import ClassifyConfig
from digitd.model import DigitModel, reject_reason
from train.metrics import summarize


def classify_clips(model: DigitModel, clips: Sequence[Clip], rule: ClassifyConfig, progress: bool = True) -> tuple[list[str], np.ndarray]:
    """(label, rejected) per clip, with a progress bar."""
    from rich.console import Console
    from rich.progress import track

    labels, rejected = [], []
    for c in track(clips, description="unseen speakers", console=Console(stderr=True), disable=not progress, transient=True):
        x = load_wav(c.path)
        p = model.predict_wave(x)
        labels.append(p.label)
        rejected.append(reject_reason(x, p, rule) is not None)
    return labels, np.asarray(rejected, dtype=bool)


def evaluate_unseen(model: DigitModel, clips: Sequence[Clip], rule: ClassifyConfig, progress: bool = True) -> dict[str, Any]:
    """Closed-set accuracy on the digits (best label, rejection ignored) and open-set shares
    rejected under `rule` (threshold, voicing, agreement). Balanced accuracy = mean per-class recall (the corpus is unbalanced)."""
    labels, rej = classify_clips(model, clips, rule, progress)
    pred = np.asarray(labels)
    kind = np.asarray([c.kind for c in clips])
    truth = np.asarray([c.label for c in clips])
    corpus = np.asarray([c.corpus for c in clips])
    d = kind == "digit"
    m = summarize(truth[d], pred[d], model.classes)
    per_class = {c: float(np.mean(pred[d & (truth == c)] == c)) for c in model.classes if np.any(d & (truth == c))}
    words = kind == "word"
    hom = words & np.isin(truth, NEAR_HOMOPHONES)

    def share(mask: np.ndarray) -> float | None:
        return float(np.mean(rej[mask])) if mask.any() else None

    return {
        "n": int(d.sum()),
        "speakers": len({c.speaker for c in clips if c.kind == "digit"}),
        "accuracy": m["accuracy"],
        "balanced_accuracy": float(np.mean(list(per_class.values()))) if per_class else 0.0,
        "per_class": per_class,
        "n_per_class": {c: int(np.sum(d & (truth == c))) for c in per_class},
        "per_corpus": {k: {"n": int(np.sum(d & (corpus == k))), "accuracy": float(np.mean(pred[d & (corpus == k)] == truth[d & (corpus == k)]))}
                       for k in sorted(set(corpus[d]))},
        "confusion": m["confusion"],
        "threshold": rule.reject_threshold,
        "agree_min": rule.agree_min,
        "min_voiced_ms": rule.min_voiced_ms,
        "voiced_range_db": rule.voiced_range_db,
        "words_rejected": share(words),
        "near_homophones_rejected": share(hom),
        "near_homophones_rejected_by_word": {w: share(words & (truth == w)) for w in NEAR_HOMOPHONES},
        "noise_rejected": share(kind == "noise"),
        "digits_rejected": share(d),
        "n_words": int(words.sum()),
        "n_noise": int(np.sum(kind == "noise")),
        "errors": [{"file": str(c.path), "true": c.label, "pred": p} for c, p, k in zip(clips, labels, d) if k and p != c.label],
    }
