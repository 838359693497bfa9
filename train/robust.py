"""Robustness measurements: accuracy under signal conditions, open-set rejection, unseen
synthetic voices. All run the model exactly as `digitd predict` does (whole clip -> features
-> classify)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from digitd.model import DigitModel
from digitd.synth import reverberate, room_impulse
from train.augment import add_noise, apply_gain, change_speed, pad
from train.data import Record

Condition = Callable[[np.ndarray, np.random.Generator, np.ndarray], np.ndarray]


def _noise(kind: str, snr: float) -> Condition:
    return lambda x, rng, bab: add_noise(x, kind, snr, rng, bab)


def _pad(ms: float) -> Condition:
    return lambda x, rng, bab: pad(x, ms, ms, 50.0, rng)


CONDITIONS: dict[str, Condition] = {"clean": lambda x, rng, bab: x}
for _kind in ("white", "pink", "babble"):
    for _snr in (20, 10, 5):
        CONDITIONS[f"{_kind} {_snr} dB"] = _noise(_kind, float(_snr))
for _g in (0.03, 0.1, 3.0, 10.0):
    CONDITIONS[f"gain x{_g:g}"] = (lambda g: lambda x, rng, bab: apply_gain(x, g))(_g)
for _ms in (150, 300):
    CONDITIONS[f"pad {_ms} ms"] = _pad(float(_ms))
for _sp in (0.9, 1.1):
    CONDITIONS[f"speed x{_sp:g}"] = (lambda f: lambda x, rng, bab: change_speed(x, f))(_sp)
for _rt in (0.3, 0.6):  # a talker about 1 m from the microphone (direct sound 3 dB over the reverberation)
    CONDITIONS[f"room {_rt:g} s"] = (lambda rt: lambda x, rng, bab: reverberate(x, room_impulse(rt, 3.0, rng)))(_rt)


def _classify_chunk(model: DigitModel, recs: Sequence[Record], names: Sequence[str], babble: np.ndarray, seed: int) -> list[list[str]]:
    out = []
    for r in recs:
        x = np.asarray(r.load(), dtype=np.float64)
        row = []
        for name in names:
            key = int.from_bytes(f"{r.name}|{name}".encode()[:8].ljust(8, b"\0"), "little") % (2**31)
            rng = np.random.default_rng([seed, key])
            row.append(model.predict_wave(CONDITIONS[name](x, rng, babble)).label)
        out.append(row)
    return out


def run_conditions(model: DigitModel, recs: Sequence[Record], babble: np.ndarray, *, jobs: int = 2, seed: int = 1,
                   names: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy of `model` on `recs` under every condition (test-time noise uses its own seed)."""
    from joblib import Parallel, delayed

    names = list(names or CONDITIONS)
    chunks = [recs[i : i + 50] for i in range(0, len(recs), 50)]
    parts = Parallel(n_jobs=jobs)(delayed(_classify_chunk)(model, c, names, babble, seed) for c in chunks)
    rows = [row for p in parts for row in p]
    truth = np.asarray([r.label for r in recs])
    preds = np.asarray(rows)
    return {n: float(np.mean(preds[:, j] == truth)) for j, n in enumerate(names)}


def confidences(model: DigitModel, waves: Sequence[np.ndarray]) -> np.ndarray:
    return np.asarray([model.predict_wave(w).confidence for w in waves])


def open_set(model: DigitModel, threshold: float, digit_waves: Sequence[np.ndarray], nondigit: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """Share rejected (confidence < threshold) per kind of non-digit sound and for true digits."""
    res: dict[str, Any] = {"threshold": threshold}
    dc = confidences(model, digit_waves)
    res["true_digits_rejected"] = float(np.mean(dc < threshold))
    res["n_digits"] = len(dc)
    res["rejected"] = {}
    for kind, waves in nondigit.items():
        c = confidences(model, waves)
        res["rejected"][kind] = {"n": len(c), "rate": float(np.mean(c < threshold))}
    sweep = []
    all_nd = {k: confidences(model, w) for k, w in nondigit.items()}
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        sweep.append({"threshold": t, "digits_rejected": float(np.mean(dc < t)),
                      **{k: float(np.mean(c < t)) for k, c in all_nd.items()}})
    res["sweep"] = sweep
    return res


def nondigit_words_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "tests" / "data" / "nondigit"


def accuracy_by_group(model: DigitModel, recs: Sequence[Record]) -> dict[str, Any]:
    per: dict[str, list[bool]] = {}
    for r in recs:
        per.setdefault(r.speaker, []).append(model.predict_wave(r.load()).label == r.label)
    allv = [v for vs in per.values() for v in vs]
    return {"n": len(allv), "accuracy": float(np.mean(allv)) if allv else 0.0,
            "per_voice": {k: float(np.mean(v)) for k, v in per.items()}}


