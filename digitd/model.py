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
from digitd import cnn as cnn_mod
from digitd.embedding import SpeechEmbedding, default_path as default_frontend_path
from digitd.features import DEFAULT_PARAMS, FeatureParams, extract, logmel, trim
from digitd.runtime import NotCompilable, Runtime, compile_estimator, ensemble_parts, score, sklearn_scores

FORMAT = "digitd-model/1"
DEFAULT_NAME = "default"
OTHER = "other"  # the embedding member's extra class: a non-digit word, noise, anything else


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
class Features:
    """What the classifier sees of one utterance: the pooled vector and, for a model with a
    convolutional member, the log-mel spectrogram (None otherwise)."""

    vector: np.ndarray
    spec: np.ndarray | None = None
    embed: np.ndarray | None = None  # the pooled speech embedding, for a model with that member


@dataclass
class CnnMember:
    """The convolutional member and how loud it speaks: weight = base + gain * (1 - clean),
    where clean is the ensemble gate's weight for its clean-audio member (0 without a gate),
    against the pooled members' summed weight. ~base on clean audio, ~base + gain in noise.
    `nets` are copies trained from different seeds; their probabilities are averaged, because
    one seed alone moves 5 dB white-noise accuracy by about a point (train/README.md)."""

    nets: list[dict[str, Any]]
    gain: float
    base: float = 0.0

    def weight(self, clean: np.ndarray) -> np.ndarray:
        return self.base + self.gain * (1.0 - np.asarray(clean, dtype=np.float64))

    def proba(self, spec: np.ndarray) -> np.ndarray:
        """(classes,) for one log-mel spectrogram: the mean of the nets' softmax outputs."""
        return np.mean([cnn_mod.proba(net, spec) for net in self.nets], axis=0)

    def n_parameters(self) -> int:
        return sum(cnn_mod.n_parameters(net) for net in self.nets)

    def combine(self, parts: dict[str, np.ndarray], cnn_probs: np.ndarray) -> np.ndarray:
        """Digit probabilities (n, classes) of the pooled members' average joined by this member
        (`parts` from digitd.runtime.ensemble_parts; the detector's P(speech) not applied)."""
        w = parts["weight"][:, None]
        wc = self.weight(parts["clean"])[:, None]
        return (w * parts["digit"] + wc * np.atleast_2d(cnn_probs)) / (w + wc)


@dataclass
class EmbedMember:
    """Logistic regression on the pooled speech embedding (digitd.embedding): a front end
    pretrained on far more voices than ours, so it carries to speakers we never trained on.
    It has one class more than the digits, OTHER, learned from real non-digit words and real
    background noise. Its digit probabilities join the other members' as a `weight` share of
    the average, and the result is scaled by (1 - P(OTHER)) ** power: that is what makes a
    word that is not a digit, or a noise, come out with a low confidence (rejected)."""

    frontend: SpeechEmbedding
    lr: Runtime  # compiled StandardScaler + LogisticRegression (digitd.runtime); columns = `classes`
    classes: list[str]  # the model's digit classes in its order, then OTHER
    weight: float = 0.5
    power: float = 1.0
    source: Path = field(default_factory=default_frontend_path)  # the front end's file (saved beside the model)

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        """(n, classes + 1) probabilities of pooled embedding vectors."""
        return score(self.lr, np.atleast_2d(vectors))

    def combine(self, base: np.ndarray, pe: np.ndarray) -> np.ndarray:
        return join_embedding(base, pe, self.weight, self.power)


def join_embedding(base: np.ndarray, pe: np.ndarray, weight: float, power: float) -> np.ndarray:
    """The other members' digit probabilities (n, C; any scale) joined by the embedding
    member's (n, C + 1; OTHER last): a `weight` share of the average, times (1 - P(OTHER)) ** power."""
    base = np.atleast_2d(base)
    pe = np.atleast_2d(pe)
    b = base / np.maximum(base.sum(axis=1, keepdims=True), 1e-12)
    d = pe[:, :-1] / np.maximum(pe[:, :-1].sum(axis=1, keepdims=True), 1e-12)
    return ((1.0 - weight) * b + weight * d) * (1.0 - pe[:, -1:]) ** power


class DigitModel:
    """A fitted classifier with the feature parameters it was trained on.

    Scoring uses the numpy `runtime` (see digitd.runtime) when the model has one, so the
    daemon never imports scikit-learn; `estimator` is unpickled only when asked for. An
    optional `cnn` member (digitd.cnn, numpy too) joins the pooled members' average.
    """

    def __init__(self, estimator: Any = None, classes: list[str] | None = None, params: FeatureParams = DEFAULT_PARAMS,
                 meta: dict[str, Any] | None = None, *, runtime: Runtime | None = None, estimator_blob: bytes | None = None,
                 cnn: CnnMember | None = None, embed: EmbedMember | None = None):
        self._estimator = estimator
        self._blob = estimator_blob
        self.classes = [str(c) for c in (classes or [])]
        self.params = params
        self.meta = dict(meta or {})
        self.runtime = runtime
        self.cnn = cnn
        self.embed = embed

    @property
    def estimator(self) -> Any:
        if self._estimator is None and self._blob is not None:
            self._estimator = pickle.loads(self._blob)
        return self._estimator

    def features(self, x: np.ndarray, *, trimmed: bool = False) -> Features:
        # the embedding sees the utterance as given (it centres the word itself); the pooled
        # MFCC and the log-mel view see the trimmed word
        emb = None if self.embed is None else self.embed.frontend.pooled(x)
        if self.cnn is None:
            return Features(extract(x, self.params, trimmed=trimmed), embed=emb)
        if not trimmed:
            x = trim(x, self.params)
        return Features(extract(x, self.params, trimmed=True), logmel(x, self.params, trimmed=True), emb)

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes) from pooled vectors alone (no convolutional member):
        predict_proba, else softmax of the decision function."""
        feats = np.atleast_2d(feats)
        if self.runtime is not None:
            return score(self.runtime, feats)
        return sklearn_scores(self.estimator, feats)

    def probabilities(self, feats: Features) -> np.ndarray:
        """(n_classes,) for one utterance, the convolutional and embedding members included when
        the model has them."""
        p = self._pooled_and_cnn(feats)
        if self.embed is None or feats.embed is None:
            return p
        return self.embed.combine(p, self.embed.proba(feats.embed))[0]

    def _pooled_and_cnn(self, feats: Features) -> np.ndarray:
        if self.cnn is None or feats.spec is None:
            return self.scores(feats.vector)[0]
        v = np.atleast_2d(feats.vector)
        if self.runtime is not None:
            parts = ensemble_parts(self.runtime, v)
        elif hasattr(self.estimator, "parts"):
            parts = self.estimator.parts(v)
        else:
            parts = {"digit": sklearn_scores(self.estimator, v), "weight": np.ones(1), "speech": np.ones(1), "clean": np.zeros(1)}
        return self.cnn.combine(parts, self.cnn.proba(feats.spec))[0] * float(parts["speech"][0])

    def classify(self, feats: Features) -> Prediction:
        p = self.probabilities(feats)
        i = int(np.argmax(p))
        return Prediction(self.classes[i], float(p[i]), {c: float(v) for c, v in zip(self.classes, p)})

    def predict_wave(self, x: np.ndarray, *, trimmed: bool = False) -> Prediction:
        return self.classify(self.features(x, trimmed=trimmed))

    def warm_up(self) -> None:
        """One throwaway prediction so the first real digit pays no lazy-import or cache cost."""
        rng = np.random.default_rng(0)
        self.predict_wave((rng.standard_normal(SAMPLE_RATE // 2) * 0.1).astype(np.float32))


def reject_reason(audio: np.ndarray, confidence: float, threshold: float, min_voiced_ms: float) -> str | None:
    """Why the daemon turns an utterance into a `rejected` event, or None to emit the digit:
    no stretch of pitch as long as a syllable (coughs, claps, noise bursts), or low confidence."""
    from digitd.voicing import longest_voiced_ms

    if min_voiced_ms > 0 and longest_voiced_ms(audio) < min_voiced_ms:
        return "unvoiced"
    if confidence < threshold:
        return "low_confidence"
    return None


def save_model(model: DigitModel, path: str | Path, card: dict[str, Any],
               check_x: np.ndarray | None = None) -> dict[str, Any]:
    """Write the bundle and its card (with the bundle's SHA-256); returns the card written.

    The estimator is compiled to a numpy runtime when possible; `check_x` (some feature
    rows) is used to prove the runtime scores equal scikit-learn's before anything is saved.
    """
    import joblib
    import sklearn

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    est = model.estimator
    try:
        runtime = compile_estimator(est)
    except NotCompilable:
        runtime = None
    if runtime is not None:
        probe = check_x if check_x is not None else np.random.default_rng(0).standard_normal((20, model.params.dim))
        want, got = sklearn_scores(est, probe), score(runtime, probe)
        if not np.allclose(want, got, atol=1e-5):
            raise ModelError(f"numpy runtime disagrees with scikit-learn (max diff {np.abs(want - got).max():.2e})")
    if runtime is not None:
        # the daemon scores the runtime; the scikit-learn copy (twice the bytes) goes to a file
        # of its own that only someone inspecting or refitting the estimators reads
        joblib.dump(est, path.with_suffix(".sklearn.joblib"), compress=3)
    embed = None
    if model.embed is not None:
        front = model.embed.source
        embed = {"lr": model.embed.lr, "classes": list(model.embed.classes), "weight": model.embed.weight,
                 "power": model.embed.power, "frontend": front.name, "frontend_sha256": sha256_file(front)}
        if front.resolve().parent != path.resolve().parent:
            import shutil

            shutil.copyfile(front, path.parent / front.name)
    bundle = {
        "format": FORMAT,
        "runtime": runtime,
        "estimator_blob": None if runtime is not None else pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL),
        "classes": list(model.classes),
        "feature_params": model.params.to_dict(),
        "sklearn_version": sklearn.__version__,
        "meta": model.meta,
        "cnn": None if model.cnn is None else {"nets": model.cnn.nets, "gain": model.cnn.gain, "base": model.cnn.base},
        "embed": embed,
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
            "numpy_runtime": runtime is not None,
            "cnn": None if model.cnn is None else {"gain": model.cnn.gain, "base": model.cnn.base, "nets": len(model.cnn.nets),
                                                   "parameters": model.cnn.n_parameters()},
            "embed": None if embed is None else {k: embed[k] for k in ("classes", "weight", "power", "frontend", "frontend_sha256")},
            "created": card.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    write_card(path, card)
    return card


def write_card(path: str | Path, card: dict[str, Any]) -> None:
    """The card beside model `path`: the one place its JSON layout is decided."""
    card_path(path).write_text(json.dumps(card, indent=2) + "\n")


def read_card(path: str | Path) -> dict[str, Any]:
    cp = card_path(path)
    if not cp.is_file():
        raise ModelError(f"{path}: model card {cp.name} is missing (it holds the SHA-256 checked before loading)")
    try:
        return json.loads(cp.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{cp}: unreadable model card ({e})") from None


def load_model(path: str | Path | None = None, params: FeatureParams = DEFAULT_PARAMS, *,
               keep_estimator: bool = True) -> DigitModel:
    """Verify and load a model; refuse one whose features differ from `params`.

    `keep_estimator=False` (the daemon, bench, predict) drops the pickled scikit-learn copy
    when the numpy runtime can score alone: tens of MB the daemon would never unpickle."""
    import joblib

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
    mine = _sklearn_version()
    if mine is not None and saved.split(".")[0] != mine.split(".")[0]:
        raise ModelError(f"{path}: trained with scikit-learn {saved}, this is {mine} (major versions differ); retrain it")
    try:
        model_params = FeatureParams.from_dict(bundle["feature_params"])
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"{path}: bad feature parameters ({e})") from None
    if model_params != params:
        mine_p = params.to_dict()
        shown = ", ".join(f"{k}: model {v} vs digitd {mine_p[k]}" for k, v in model_params.to_dict().items() if mine_p[k] != v)
        raise ModelError(f"{path}: feature parameters differ from this digitd ({shown})")
    classes = [str(c) for c in bundle.get("classes", [])]
    runtime = bundle.get("runtime")
    blob = bundle.get("estimator_blob")
    if runtime is None and not isinstance(blob, bytes):
        raise ModelError(f"{path}: holds no classifier")
    if runtime is not None and not keep_estimator:
        blob = None
    cnn = None
    if bundle.get("cnn") is not None:
        try:
            c = bundle["cnn"]
            nets = list(c["nets"]) if "nets" in c else [c["weights"]]  # "weights": one net (models before v5)
            if not nets:
                raise ValueError("no nets")
            cnn = CnnMember(nets, float(c["gain"]), float(c.get("base", 0.0)))
            probe = np.full((8, model_params.mel_bands), model_params.mel_floor, np.float32)
            shapes = {cnn_mod.proba(net, probe).shape for net in nets}
            if len(shapes) != 1:
                raise ValueError("its nets disagree on the number of classes")
            (shape,) = shapes
        except Exception as e:  # noqa: BLE001 - any malformed array or key is a bad model file
            raise ModelError(f"{path}: bad convolutional member ({type(e).__name__}: {e})") from None
        if shape != (len(classes),):
            raise ModelError(f"{path}: convolutional member gives {shape[0]} scores for {len(classes)} classes")
    embed = _load_embed(path, bundle.get("embed"), classes)
    model = DigitModel(None, classes, model_params, dict(bundle.get("meta", {})) | {"path": str(path), "card": card},
                       runtime=runtime, estimator_blob=blob, cnn=cnn, embed=embed)
    if runtime is None:  # scored by scikit-learn: unpickle and check it now, not at the first digit
        try:
            est = model.estimator
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad model file
            raise ModelError(f"{path}: corrupt classifier ({type(e).__name__})") from None
        if not (hasattr(est, "predict_proba") or hasattr(est, "decision_function")):
            raise ModelError(f"{path}: the estimator cannot score samples")
    try:
        probs = model.scores(np.zeros((1, model_params.dim), dtype=np.float32))
    except Exception as e:  # noqa: BLE001 - shapes or arrays that do not fit
        raise ModelError(f"{path}: classifier does not fit the feature vector ({type(e).__name__}: {e})") from None
    if probs.shape != (1, len(classes)):
        raise ModelError(f"{path}: classifier gives {probs.shape[1]} scores for {len(classes)} classes")
    return model


def _load_embed(path: Path, spec: dict[str, Any] | None, classes: list[str]) -> EmbedMember | None:
    """The embedding member: its front end is a data-only file beside the model (shared by every
    model that uses it), checked against the SHA-256 the model was trained with."""
    if spec is None:
        return None
    try:
        front = path.parent / str(spec["frontend"])
        if not front.is_file():
            raise ValueError(f"its front end {front.name} is missing beside the model")
        if sha256_file(front) != spec["frontend_sha256"]:
            raise ValueError(f"{front.name} is not the front end it was trained with (SHA-256 differs)")
        member = EmbedMember(SpeechEmbedding.load(front), spec["lr"], [str(c) for c in spec["classes"]],
                             float(spec["weight"]), float(spec["power"]), front)
        if member.classes != classes + [OTHER]:
            raise ValueError(f"its classes {member.classes} are not the model's plus {OTHER!r}")
        probe = member.proba(np.zeros((1, member.lr["coef"].shape[1])))
        if probe.shape != (1, len(classes) + 1):
            raise ValueError(f"it gives {probe.shape[1]} scores")
    except Exception as e:  # noqa: BLE001 - any malformed array or key is a bad model file
        raise ModelError(f"{path}: bad embedding member ({type(e).__name__}: {e})") from None
    return member


def _sklearn_version() -> str | None:
    """The installed scikit-learn version, read from metadata so the daemon need not import it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scikit-learn")
    except PackageNotFoundError:
        return None
