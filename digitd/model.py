"""The classifier file: a joblib bundle plus a JSON model card beside it.

joblib files are pickles and can run code when loaded, so only load models you trust. As a
guard against swapped or damaged files, `load_model` checks the file's SHA-256 against the
model card before unpickling it, then checks the format, the scikit-learn major version and
the feature parameters against what this digitd computes. Every failure is a `ModelError`
with a one-line reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitd import SAMPLE_RATE
from digitd.features import DEFAULT_PARAMS, FeatureParams, extract

FORMAT = "digitd-model/1"
DEFAULT_NAME = "default"


class ModelError(Exception):
    """A model file that cannot be used, with a one-line reason."""


def models_dirs() -> list[Path]:
    """Where shipped models live: `digitd/_models` in a wheel, `models/` in a checkout."""
    here = Path(__file__).resolve().parent
    return [here / "_models", here.parent / "models"]


def default_model_path() -> Path:
    for d in models_dirs():
        p = d / f"{DEFAULT_NAME}.joblib"
        if p.is_file():
            return p
    return models_dirs()[-1] / f"{DEFAULT_NAME}.joblib"


def card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Prediction:
    label: str
    confidence: float
    probs: dict[str, float] = field(default_factory=dict)


@dataclass
class DigitModel:
    """A fitted scikit-learn estimator with the feature parameters it was trained on."""

    estimator: Any
    classes: list[str]
    params: FeatureParams = DEFAULT_PARAMS
    meta: dict[str, Any] = field(default_factory=dict)

    def features(self, x: np.ndarray, *, trimmed: bool = False) -> np.ndarray:
        return extract(x, self.params, trimmed=trimmed)

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes): predict_proba, else softmax of the decision function."""
        feats = np.atleast_2d(feats)
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict_proba(feats)
        d = np.atleast_2d(self.estimator.decision_function(feats))
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def classify(self, feats: np.ndarray) -> Prediction:
        p = self.scores(feats)[0]
        i = int(np.argmax(p))
        return Prediction(self.classes[i], float(p[i]), {c: float(v) for c, v in zip(self.classes, p)})

    def predict_wave(self, x: np.ndarray, *, trimmed: bool = False) -> Prediction:
        return self.classify(self.features(x, trimmed=trimmed))

    def warm_up(self) -> None:
        """One throwaway prediction so the first real digit pays no lazy-import or cache cost."""
        rng = np.random.default_rng(0)
        self.predict_wave((rng.standard_normal(SAMPLE_RATE // 2) * 0.1).astype(np.float32))


def save_model(model: DigitModel, path: str | Path, card: dict[str, Any]) -> dict[str, Any]:
    """Write the bundle and its card (with the bundle's SHA-256); returns the card written."""
    import joblib
    import sklearn

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bundle = {
        "format": FORMAT,
        "estimator": model.estimator,
        "classes": list(model.classes),
        "feature_params": model.params.to_dict(),
        "sklearn_version": sklearn.__version__,
        "meta": model.meta,
    }
    joblib.dump(bundle, path, compress=3)
    card = dict(card)
    card.update(
        {
            "format": FORMAT,
            "file": path.name,
            "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
            "classes": list(model.classes),
            "feature_params": model.params.to_dict(),
            "sklearn_version": sklearn.__version__,
            "created": card.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    card_path(path).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return card


def read_card(path: str | Path) -> dict[str, Any]:
    cp = card_path(path)
    if not cp.is_file():
        raise ModelError(f"{path}: model card {cp.name} is missing (it holds the SHA-256 checked before loading)")
    try:
        return json.loads(cp.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{cp}: unreadable model card ({e})") from None


def load_model(path: str | Path | None = None, params: FeatureParams = DEFAULT_PARAMS) -> DigitModel:
    """Verify and load a model; refuse one whose features differ from `params`."""
    import joblib
    import sklearn

    path = Path(path) if path else default_model_path()
    if not path.exists():
        raise ModelError(f"{path}: model file not found (train one with `digitd train`)")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a model file")
    if not os.access(path, os.R_OK):
        raise ModelError(f"{path}: permission denied")
    card = read_card(path)
    digest = sha256_file(path)
    if card.get("sha256") != digest:
        raise ModelError(f"{path}: SHA-256 {digest[:12]}... does not match its model card; refusing to load")
    try:
        bundle = joblib.load(path)
    except (EOFError, pickle.UnpicklingError, zlib.error, ValueError, KeyError, IndexError,
            AttributeError, ImportError, TypeError, OSError) as e:
        raise ModelError(f"{path}: corrupt or unreadable model ({type(e).__name__})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise ModelError(f"{path}: not a digitd model (expected format {FORMAT})")
    saved = str(bundle.get("sklearn_version", "0"))
    if saved.split(".")[0] != sklearn.__version__.split(".")[0]:
        raise ModelError(
            f"{path}: trained with scikit-learn {saved}, this is {sklearn.__version__} (major versions differ); retrain it"
        )
    try:
        model_params = FeatureParams.from_dict(bundle["feature_params"])
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"{path}: bad feature parameters ({e})") from None
    if model_params != params:
        diff = {k: (v, params.to_dict()[k]) for k, v in model_params.to_dict().items() if params.to_dict()[k] != v}
        shown = ", ".join(f"{k}: model {a} vs digitd {b}" for k, (a, b) in diff.items())
        raise ModelError(f"{path}: feature parameters differ from this digitd ({shown})")
    est = bundle.get("estimator")
    if not (hasattr(est, "predict_proba") or hasattr(est, "decision_function")):
        raise ModelError(f"{path}: the estimator cannot score samples")
    return DigitModel(est, [str(c) for c in bundle["classes"]], model_params, dict(bundle.get("meta", {})) | {"path": str(path), "card": card})
