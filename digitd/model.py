"""The classifier file: numpy arrays and JSON in an .npz, plus a JSON model card beside it.

A model file is data, never code: `load_model` reads it with `np.load(allow_pickle=False)`, so
no file given as `--model` can run anything when loaded. The card's SHA-256 is checked first (a
swapped or damaged file is refused), then the format and the feature parameters against what
this digitd computes. Every failure is a `ModelError` with a one-line reason. Pickle-based
bundles of digitd before 0.2 (`.joblib`, format digitd-model/1) are refused unread; `digitd
convert-model` turns one you trust into this format. The scikit-learn estimators, wanted only for
refitting or inspection, are saved beside the model as NAME.sklearn.joblib, which nothing but
the trainer reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitd import SAMPLE_RATE
from digitd import cnn as cnn_mod
from digitd import embedhead
from digitd.config import ClassifyConfig
from digitd.embedding import EMBED_DIM, SpeechEmbedding, default_path as default_frontend_path, pool
from digitd.features import DEFAULT_PARAMS, FeatureParams, extract, logmel, trim
from digitd.runtime import (NotCompilable, Runtime, compile_estimator, ensemble_parts, half_support_vectors, prepare, score,
                            sklearn_scores, stored)

FORMAT = "digitd-model/2"
PICKLE_FORMAT = "digitd-model/1"  # joblib bundles before 0.2: converted, never loaded
SUFFIX = ".npz"
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
        p = d / f"{DEFAULT_NAME}{SUFFIX}"
        if p.is_file():
            return p
    return models_dirs()[-1] / f"{DEFAULT_NAME}{SUFFIX}"


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
    # the strongest members' own best guesses, (label, probability), by member ("cnn", "embed"),
    # and the shipped model's ("shipped": differs with a user profile): what `agreed` reads
    votes: dict[str, tuple[str, float]] = field(default_factory=dict)
    speech: float = 1.0  # the digit detector's P(speech) (1 for a model without one): what `agreed` checks first


@dataclass
class Features:
    """What the classifier sees of one utterance: the pooled vector and, for a model with a
    convolutional member, the log-mel spectrogram (None otherwise)."""

    vector: np.ndarray
    spec: np.ndarray | None = None
    embed: np.ndarray | None = None  # the pooled speech embedding, for a model with that member
    embed_windows: np.ndarray | None = None  # its window embeddings (11, 96), for a member with a sequence head


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
    # sequence heads over the windows (digitd.embedhead), trained from different seeds: their
    # probabilities averaged score the member instead of `lr` (one head's seed moves the room
    # bench by ~0.3 points of DER; two heads averaged beat either: train/README.md)
    heads: list[embedhead.HeadWeights] = field(default_factory=list)

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        """(n, classes + 1) probabilities of pooled embedding vectors (the logistic regression)."""
        return score(self.lr, np.atleast_2d(vectors))

    def utterance_proba(self, feats: Features) -> np.ndarray:
        """(1, classes + 1) for one utterance: the sequence heads on its windows when the member
        has them, else the logistic regression on its pooled vector."""
        if self.heads and feats.embed_windows is not None:
            return embedhead.mean_proba(self.heads, feats.embed_windows)
        return score(self.lr, np.atleast_2d(feats.embed))

    def combine(self, base: np.ndarray, pe: np.ndarray) -> np.ndarray:
        return join_embedding(base, pe, self.weight, self.power)

    def join(self, base: np.ndarray, feats: Features) -> np.ndarray:
        """The other members' digit probabilities (n, C) joined by this member's on one
        utterance's embedding features."""
        return self.join_both(base, feats)[0]

    def join_both(self, base: np.ndarray, feats: Features,
                  pe: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(this member's join, the shipped model's own): the same here; a user profile's member
        overrides this (digitd.profile) and computes both at once."""
        joined = self.combine(base, self.utterance_proba(feats) if pe is None else pe)
        return joined, joined


def join_embedding(base: np.ndarray, pe: np.ndarray, weight: float, power: float) -> np.ndarray:
    """The other members' digit probabilities (n, C) joined by the embedding member's (n, C + 1;
    OTHER last): a `weight` share of the average, times (1 - P(OTHER)) ** power, times the
    others' own total (their digit detector's P(speech), 1 without one). Both must hear a digit:
    the detector knows coughs and clicks, the embedding knows real words and rooms."""
    base = np.atleast_2d(base)
    pe = np.atleast_2d(pe)
    mass = base.sum(axis=1, keepdims=True)
    b = base / np.maximum(mass, 1e-12)
    d = pe[:, :-1] / np.maximum(pe[:, :-1].sum(axis=1, keepdims=True), 1e-12)
    return ((1.0 - weight) * b + weight * d) * (1.0 - pe[:, -1:]) ** power * mass


class DigitModel:
    """A fitted classifier with the feature parameters it was trained on.

    Scoring uses the numpy `runtime` (see digitd.runtime) when the model has one, so the
    daemon never imports scikit-learn; a loaded model has only the runtime, a freshly trained
    one also its scikit-learn `estimator`. Optional members join the pooled members' average:
    `cnn` (digitd.cnn) and `embed` (digitd.embedding), numpy too.
    """

    def __init__(self, estimator: Any = None, classes: list[str] | None = None, params: FeatureParams = DEFAULT_PARAMS,
                 meta: dict[str, Any] | None = None, *, runtime: Runtime | None = None,
                 cnn: CnnMember | None = None, embed: EmbedMember | None = None):
        self.estimator = estimator
        self.classes = [str(c) for c in (classes or [])]
        self.params = params
        self.meta = dict(meta or {})
        self.runtime = runtime
        self.cnn = cnn
        self.embed = embed

    def features(self, x: np.ndarray, *, trimmed: bool = False) -> Features:
        # the embedding sees the utterance as given (it centres the word itself); the pooled
        # MFCC and the log-mel view see the trimmed word
        emb = wins = None
        if self.embed is not None:
            wins = self.embed.frontend.clip_windows(x)
            emb = pool(wins)
            if not self.embed.heads:
                wins = None
        if self.cnn is None:
            return Features(extract(x, self.params, trimmed=trimmed), embed=emb, embed_windows=wins)
        if not trimmed:
            x = trim(x, self.params)
        return Features(extract(x, self.params, trimmed=True), logmel(x, self.params, trimmed=True), emb, wins)

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
        return self._scored(feats)[0]

    def _scored(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
        """The joined probabilities, the convolutional and embedding members' own (each scored
        once) and the digit detector's P(speech) (1 without the convolutional member's parts)."""
        own: dict[str, np.ndarray] = {}
        speech = 1.0
        if self.cnn is None or feats.spec is None:
            p = self.scores(feats.vector)[0]
        else:
            v = np.atleast_2d(feats.vector)
            if self.runtime is not None:
                parts = ensemble_parts(self.runtime, v)
            elif hasattr(self.estimator, "parts"):
                parts = self.estimator.parts(v)
            else:
                parts = {"digit": sklearn_scores(self.estimator, v), "weight": np.ones(1), "speech": np.ones(1),
                         "clean": np.zeros(1)}
            own["cnn"] = self.cnn.proba(feats.spec)
            speech = float(parts["speech"][0])
            p = self.cnn.combine(parts, own["cnn"])[0] * speech
        if self.embed is not None and feats.embed is not None:
            pe = EmbedMember.utterance_proba(self.embed, feats)  # the shipped member's, with or without a profile
            own["embed"] = pe[0]
            joined, shipped = self.embed.join_both(p, feats, pe)
            p, own["shipped"] = joined[0], shipped[0]
        return p, own, speech

    def classify(self, feats: Features) -> Prediction:
        p, own, speech = self._scored(feats)
        i = int(np.argmax(p))
        votes = {name: self._vote(q) for name, q in own.items()}
        return Prediction(self.classes[i], float(p[i]), {c: float(v) for c, v in zip(self.classes, p)}, votes, speech)

    def cnn_vote(self, x: np.ndarray, *, trimmed: bool = False) -> tuple[str, float] | None:
        """The convolutional member's own best guess for `x`, as `classify` puts it in
        `Prediction.votes["cnn"]`, at a tenth of the cost (no embedding, no pooled members);
        None for a model without that member. `agreed` needs it to name the digit: a word it
        does not name need not be classified in full to be turned down."""
        if self.cnn is None:
            return None
        if not trimmed:
            x = trim(x, self.params)
        return self._vote(self.cnn.proba(logmel(x, self.params, trimmed=True)))

    def _vote(self, q: np.ndarray) -> tuple[str, float]:
        """A member's best guess from its probabilities: (label, probability); past the digit
        classes, OTHER (the embedding member's extra class)."""
        j = int(np.argmax(q))
        return (self.classes[j] if j < len(self.classes) else OTHER, float(q[j]))

    def predict_wave(self, x: np.ndarray, *, trimmed: bool = False) -> Prediction:
        return self.classify(self.features(x, trimmed=trimmed))

    def warm_up(self) -> None:
        """One throwaway prediction so the first real digit pays no lazy-import or cache cost."""
        rng = np.random.default_rng(0)
        self.predict_wave((rng.standard_normal(SAMPLE_RATE // 2) * 0.1).astype(np.float32))


def agreed(pred: Prediction, agree_min: float, min_speech: float = 0.0) -> bool:
    """Do the convolutional and the embedding member both name the predicted digit with at
    least `agree_min` each (0 = never)? Two members that learned from different views (a log-mel
    CNN, a front end pretrained on other voices) rarely agree that sure on a word that is not a
    digit; the pooled members and their speech detector, which pull the average down on strange
    voices and quiet words, then do not veto, unless the detector is all but sure it heard no
    speech (P(speech) < `min_speech`): a cough or a click, the sounds it was trained on."""
    if agree_min <= 0 or pred.label == OTHER or pred.speech < min_speech:
        return False
    shipped = pred.votes.get("shipped")  # with a user profile: only what the shipped model would emit too
    if shipped is not None and shipped[0] != pred.label:
        return False
    v = [pred.votes.get(m) for m in ("cnn", "embed")]
    return all(x is not None and x[0] == pred.label and x[1] >= agree_min for x in v)


def reject_reason(audio: np.ndarray, pred: Prediction, c: ClassifyConfig, noise_around: bool = False,
                  steady_bar: bool = False) -> str | None:
    """Why the daemon turns an utterance into a `rejected` event, or None to emit the digit:
    no stretch of pitch as long as a syllable (coughs, claps, noise bursts), or low confidence;
    either is waived when the two strongest members agree (`agreed`, classify.agree_min).
    `noise_around`: heard in steady noise close under the word, where `steady_min_voiced_ms`
    applies (broadband noise lowers every hop's autocorrelation: the pitch reads shorter than it is).
    `steady_bar`: that, and at the talker's level (the pipeline knows it): `steady_reject_threshold`
    applies (the noise masks the word's quiet parts: a true digit comes out less sure)."""
    from digitd.voicing import longest_voiced_ms

    reason = None
    min_voiced = c.steady_min_voiced_ms if noise_around else c.min_voiced_ms
    if min_voiced > 0 and longest_voiced_ms(audio, c.voiced_range_db) < min_voiced:
        reason = "unvoiced"
    elif pred.confidence < (c.steady_reject_threshold if steady_bar else c.reject_threshold):
        reason = "low_confidence"
    if reason and agreed(pred, c.agree_min, c.agree_min_speech):
        return None
    return reason


def save_model(model: DigitModel, path: str | Path, card: dict[str, Any],
               check_x: np.ndarray | None = None, *, sv_float16: bool = False) -> dict[str, Any]:
    """Write the model file and its card (with the file's SHA-256); returns the card written.

    `sv_float16`: store support vectors as float16 (half the file; scripts/half_model.py checks
    the predictions first).

    The estimator is compiled to a numpy runtime; `check_x` (some feature rows) is used to
    prove the runtime scores equal scikit-learn's before anything is saved. An estimator the
    runtime cannot express is refused: a model file holds arrays, never pickled objects.
    """
    import joblib
    import sklearn

    path = Path(path)
    if path.suffix != SUFFIX:
        raise ModelError(f"{path}: a model file is named *{SUFFIX}")
    est = model.estimator
    path.parent.mkdir(parents=True, exist_ok=True)
    if est is None:  # a loaded model saved again: its runtime is all there is
        if model.runtime is None:
            raise ModelError("the model has neither an estimator nor a runtime")
        runtime = model.runtime
    else:
        try:
            runtime = compile_estimator(est)
        except NotCompilable as e:
            raise ModelError(f"the numpy runtime cannot score this estimator ({e}); a model file holds arrays only") from None
        probe = check_x if check_x is not None else np.random.default_rng(0).standard_normal((20, model.params.dim))
        want, got = sklearn_scores(est, probe), score(runtime, probe)
        if not np.allclose(want, got, atol=1e-5):
            raise ModelError(f"numpy runtime disagrees with scikit-learn (max diff {np.abs(want - got).max():.2e})")
        # the scikit-learn copy, for refitting or inspection only: the daemon never reads it
        joblib.dump(est, path.with_suffix(".sklearn.joblib"), compress=3)
    embed = None
    if model.embed is not None:
        front = model.embed.source
        embed = {"lr": model.embed.lr, "classes": list(model.embed.classes), "weight": model.embed.weight,
                 "power": model.embed.power, "frontend": front.name, "frontend_sha256": sha256_file(front),
                 "heads": model.embed.heads}
        if front.resolve().parent != path.resolve().parent:
            import shutil

            shutil.copyfile(front, path.parent / front.name)
    bundle = {
        "format": FORMAT,
        "runtime": half_support_vectors(runtime) if sv_float16 else stored(runtime),
        "classes": list(model.classes),
        "feature_params": model.params.to_dict(),
        "meta": model.meta,
        "cnn": None if model.cnn is None else {"nets": model.cnn.nets, "gain": model.cnn.gain, "base": model.cnn.base},
        "embed": embed,
    }
    write_bundle(bundle, path)
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
            "numpy_runtime": True,
            "cnn": None if model.cnn is None else {"gain": model.cnn.gain, "base": model.cnn.base, "nets": len(model.cnn.nets),
                                                   "parameters": model.cnn.n_parameters()},
            # the trainer's own entries (out-of-fold rejection, negatives) stay beside the file's
            "embed": None if embed is None else {**(card.get("embed") or {}),
                                                 **{k: embed[k] for k in ("classes", "weight", "power", "frontend", "frontend_sha256")},
                                                 "heads": len(model.embed.heads),
                                                 "head_parameters": sum(embedhead.n_parameters(h) for h in model.embed.heads) or None},
            "created": card.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    write_card(path, card)
    return card


def write_bundle(bundle: dict[str, Any], path: Path) -> None:
    """The bundle as one compressed .npz: its arrays as members, everything else as JSON."""
    arrays: dict[str, np.ndarray] = {}

    def pack(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                raise ModelError("a model file cannot hold object arrays")
            key = f"a{len(arrays)}"
            arrays[key] = obj
            return {ARRAY_KEY: key}
        if isinstance(obj, dict):
            return {str(k): pack(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [pack(v) for v in obj]
        if isinstance(obj, np.generic):
            return obj.item()
        if obj is None or isinstance(obj, (str, int, float, bool)):
            return obj
        raise ModelError(f"a model file cannot hold a {type(obj).__name__}")

    tree = json.dumps(pack(bundle)).encode()
    np.savez_compressed(path, **{TREE_KEY: np.frombuffer(tree, dtype=np.uint8)}, **arrays)


ARRAY_KEY = "__array__"
TREE_KEY = "__bundle__"


def check_archive(path: Path) -> None:
    """Refuse anything but an .npz archive before reading a byte of it as data; a pickle gets a
    message that says how to convert it."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"{path}: unreadable ({e.strerror})") from None
    if magic == b"PK\x03\x04":
        return
    if magic[:1] == b"\x80" or magic[:2] in (b"x\x9c", b"x\x01", b"x\xda") or path.suffix == ".joblib":
        raise ModelError(f"{path}: a pickle-based model ({PICKLE_FORMAT}), which can run code when loaded: "
                         f"not loaded. If you trust it, convert it: digitd convert-model {path}")
    raise ModelError(f"{path}: not a digitd model file (expected an {SUFFIX} archive)")


def _widened(z: Any, key: str) -> np.ndarray:
    """Member `key` of an open npz; a 2-D float16 one (support vectors) is read a block of rows
    at a time straight into float32. Why: reading it whole and then widening keeps both copies
    resident at once (+9 MB of peak RSS for v6, never given back to the OS by malloc)."""
    name = key + ".npy"
    if name not in z.zip.namelist():
        return z[key]
    with z.zip.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            return z[key]
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.kind != "f" or dtype.itemsize != 2 or fortran or len(shape) != 2:
            return z[key]
        out = np.empty(shape, dtype=np.float32)
        rows = 512
        for i in range(0, shape[0], rows):
            n = min(rows, shape[0] - i)
            buf = f.read(n * shape[1] * 2)
            if len(buf) != n * shape[1] * 2:
                raise ValueError(f"array {key} is truncated")
            out[i : i + n] = np.frombuffer(buf, dtype=dtype).reshape(n, shape[1])
    return out


def read_bundle(path: Path, *, widen_float16: bool = False) -> dict[str, Any]:
    """The bundle of a model file, read as data only (no pickle): ModelError if it is not one.
    `widen_float16`: 2-D float16 arrays come back as float32 (what scoring uses; `_widened`)."""
    check_archive(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            tree = json.loads(bytes(z[TREE_KEY]).decode())
            arrays = {k: _widened(z, k) if widen_float16 else z[k] for k in z.files if k != TREE_KEY}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: corrupt or unreadable model ({type(e).__name__}: {str(e)[:80]})") from None

    def unpack(obj: Any) -> Any:
        if isinstance(obj, dict):
            if set(obj) == {ARRAY_KEY}:
                return arrays[obj[ARRAY_KEY]]
            return {k: unpack(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [unpack(v) for v in obj]
        return obj

    try:
        bundle = unpack(tree)
    except KeyError as e:
        raise ModelError(f"{path}: corrupt model (missing array {e})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise ModelError(f"{path}: not a digitd model (expected format {FORMAT})")
    return bundle


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


def _check_model_file(path: Path, missing_hint: str = "") -> None:
    """One line for a model path that is not a readable file."""
    if not path.exists():
        raise ModelError(f"{path}: model file not found{missing_hint}")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a model file")
    if not os.access(path, os.R_OK):
        raise ModelError(f"{path}: permission denied")


def load_model(path: str | Path | None = None, params: FeatureParams = DEFAULT_PARAMS) -> DigitModel:
    """Verify and load a model; refuse one whose features differ from `params`."""
    path = Path(path) if path else default_model_path()
    _check_model_file(path, " (train one with `digitd train`)")
    check_archive(path)
    card = read_card(path)
    digest = sha256_file(path)
    if card.get("sha256") != digest:
        raise ModelError(f"{path}: SHA-256 {digest[:12]}... does not match its model card; refusing to load")
    bundle = read_bundle(path, widen_float16=True)
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
    if not isinstance(runtime, dict):
        raise ModelError(f"{path}: holds no classifier")
    try:
        prepare(runtime)
    except Exception as e:  # noqa: BLE001 - a malformed support-vector array is a bad model file
        raise ModelError(f"{path}: bad classifier arrays ({type(e).__name__}: {e})") from None
    cnn = None
    if bundle.get("cnn") is not None:
        try:
            c = bundle["cnn"]
            nets = list(c["nets"])
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
                       runtime=runtime, cnn=cnn, embed=embed)
    try:
        probs = model.scores(np.zeros((1, model_params.dim), dtype=np.float32))
    except Exception as e:  # noqa: BLE001 - shapes or arrays that do not fit
        raise ModelError(f"{path}: classifier does not fit the feature vector ({type(e).__name__}: {e})") from None
    if probs.shape != (1, len(classes)):
        raise ModelError(f"{path}: classifier gives {probs.shape[1]} scores for {len(classes)} classes")
    return model


def convert_pickle_model(old: str | Path, new: str | Path | None = None) -> Path:
    """Rewrite a trusted pickle-based bundle (digitd-model/1, .joblib) as a model file.

    This unpickles `old`, which can run code: only for a file you trust. Its card's SHA-256 is
    checked first, so at least the file is the one its card describes."""
    import joblib

    old = Path(old)
    _check_model_file(old)
    new = Path(new) if new else old.with_suffix(SUFFIX)
    card = read_card(old)
    if card.get("sha256") != sha256_file(old):
        raise ModelError(f"{old}: SHA-256 does not match its model card; not converting")
    try:
        b = joblib.load(old)
    except Exception as e:  # noqa: BLE001 - whatever a damaged pickle raises
        raise ModelError(f"{old}: unreadable bundle ({type(e).__name__})") from None
    if not isinstance(b, dict) or b.get("format") != PICKLE_FORMAT or b.get("runtime") is None:
        raise ModelError(f"{old}: not a {PICKLE_FORMAT} bundle with a numpy runtime; retrain it instead")
    c = b.get("cnn")
    if c is not None and "nets" not in c:
        c = {"nets": [c["weights"]], "gain": c["gain"], "base": c.get("base", 0.0)}  # one net (models before v5)
    bundle = {"format": FORMAT, "runtime": b["runtime"], "classes": b["classes"], "feature_params": b["feature_params"],
              "meta": b.get("meta", {}), "cnn": c, "embed": b.get("embed")}
    if new.resolve() == old.resolve():
        raise ModelError(f"{new}: would overwrite the file it converts")
    write_bundle(bundle, new)
    card = {**card, "format": FORMAT, "file": new.name, "sha256": sha256_file(new), "size_bytes": new.stat().st_size,
            "converted_from": {"file": old.name, "sha256": card.get("sha256"), "format": PICKLE_FORMAT}}
    write_card(new, card)
    embed = bundle.get("embed")
    if embed and (old.parent / embed["frontend"]).resolve() != (new.parent / embed["frontend"]).resolve():
        import shutil

        shutil.copyfile(old.parent / embed["frontend"], new.parent / embed["frontend"])
    return new


def _head(spec: dict[str, Any] | None) -> embedhead.HeadWeights | None:
    """A stored sequence head as float32 arrays (lists of pairs come back from JSON as lists)."""
    if spec is None:
        return None
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return {"mu": f32(spec["mu"]), "sd": f32(spec["sd"]), "convs": [(f32(w), f32(b)) for w, b in spec["convs"]],
            "out": (f32(spec["out"][0]), f32(spec["out"][1]))}


def _heads(spec: dict[str, Any]) -> list[embedhead.HeadWeights]:
    """The member's sequence heads: "heads" (a list), or "head" (one, or none: models before v10)."""
    if "heads" in spec:
        return [h for h in (_head(x) for x in spec["heads"]) if h is not None]
    one = _head(spec.get("head"))
    return [] if one is None else [one]


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
                             float(spec["weight"]), float(spec["power"]), front, _heads(spec))
        if member.classes != classes + [OTHER]:
            raise ValueError(f"its classes {member.classes} are not the model's plus {OTHER!r}")
        probe = member.proba(np.zeros((1, member.lr["coef"].shape[1])))
        if probe.shape != (1, len(classes) + 1):
            raise ValueError(f"it gives {probe.shape[1]} scores")
        for head in member.heads:
            embedhead.check(head, len(classes) + 1, EMBED_DIM)
    except Exception as e:  # noqa: BLE001 - any malformed array or key is a bad model file
        raise ModelError(f"{path}: bad embedding member ({type(e).__name__}: {e})") from None
    return member
