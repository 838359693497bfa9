"""Feature extraction in parallel, speaker-grouped hyper-parameter search, fitting and LOSO.

Hyper-parameters are chosen by cross-validation grouped by speaker on the training data only,
because what matters is accuracy on voices the model never heard, not on new takes of old ones.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from digitd.features import DEFAULT_PARAMS, FeatureParams, extract
from train.augment import AugmentSpec, augment_wave
from train.data import Record
from train.parallel import map_records, map_tasks

GRIDS: dict[str, dict[str, list[Any]]] = {
    "lr": {"clf__C": [0.03, 0.1, 0.3]},
    "svm": {"clf__C": [3.0, 10.0], "clf__gamma": [0.001, 0.003]},
}
# With augmentation the full grid costs ~10 min per fit on 2 cores (and LOSO repeats it 6
# times), so augmented recipes use fixed values, picked by LOSO on the training split only
# (takes 5-49) with the v3 features: SVM C=10 or 30 or gamma=0.001 each lost 0.4-1.8 points.
AUG_GRIDS: dict[str, dict[str, list[Any]]] = {
    "lr": {"clf__C": [0.03]},
    "svm": {"clf__C": [3.0], "clf__gamma": [0.003]},
}


@dataclass
class Recipe:
    """Everything needed to retrain the same way (stored in the model card; LOSO reuses it)."""

    classifier: str = "lr"
    grid: dict[str, list[Any]] = field(default_factory=dict)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    synth: bool = False  # add espeak-ng digits from training-only voices (train.synth.TRAIN_VARIANTS)
    clean_svm: bool = False  # with augmentation: one more SVM member fitted on the clean rows only
    cnn: bool = False  # the convolutional log-mel member (train.cnn), weight cnn_base + cnn_gain * (1 - clean)
    cnn_epochs: int = 40
    cnn_copies: int = 10
    cnn_gain: float = 8.0
    cnn_base: float = 2.0
    cnn_nets: int = 1  # seeds seed .. seed + cnn_nets - 1, averaged
    cnn_noise: str = ""  # noise kinds of the CNN's copies (train.augment.ALL_NOISE_KINDS); "" = the pooled members' (augment)
    cnn_babble: str = "digits"  # the CNN's babble bank: "digits" (FSDD training split, v3-v8) or "words" (training-side non-digit words)
    cnn_snr_db: str = ""  # SNRs of the CNN's noisy copies, comma list; "" = the pooled members'
    hold_out_dev: bool = False  # the dev slice of the training side (digitd.corpora.DEV_FRACTION) left out
    embed: bool = False  # the speech-embedding member (train.embed): digits + OTHER from real words and noise
    embed_c: float = 0.03
    embed_weight: float = 0.5
    embed_noisy: int = 1
    embed_head: bool = False  # score the embedding member with a sequence head over its windows (train.embed_head)
    embed_head_copies: int = 6
    embed_head_reverb: int = 0  # more copies for it, heard through a synthetic room first
    embed_head_speed: int = 0  # more copies for it, played faster or slower (speed_range) first
    embed_head_low: int = 0  # more copies for it, under noise at embed_head_low_snr (always noisy)
    embed_head_low_snr: str = "-6,6"  # their SNR range, "LO,HI" dB
    embed_head_low_kinds: str = "recorded,babble,white,pink"  # their noises, drawn uniformly from this list
    embed_head_nets: int = 1  # sequence heads from seeds seed .. seed + n - 1, probabilities averaged
    embed_tune: int = 0  # epochs of fine-tuning the speech embedding's upper layers with the first head (train.embed_tune); 0 = off
    embed_tune_frozen: int = 7  # with embed_tune: the first this-many convolutions keep Google's weights (train.embed_tune_frozen)
    embed_tune_heard: int = 2500  # with embed_tune: heard words drawn per tuning epoch (train.embed_tune_heard)
    heard_streams: int = 0  # room streams of training-side voices whose words, as the daemon hears them, the heads also learn (train.heard)
    cnn_speed: bool = False  # a share of the CNN's copies played faster or slower (speed_range)
    speed_range: str = "0.85,1.15"  # speed factors of those copies (tempo and pitch together), "LO,HI"
    seed: int = 0
    jobs: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        d = dict(d)
        d["augment"] = AugmentSpec(**d.get("augment", {}))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def make_estimator(kind: str):
    """StandardScaler + classifier. SVC without probability=: its decision function ranks better."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if kind == "lr":
        clf = LogisticRegression(max_iter=5000, C=0.1)
    elif kind == "svm":
        clf = SVC(kernel="rbf", C=10.0, gamma=0.003, decision_function_shape="ovr")
    else:
        raise ValueError(f"unknown classifier {kind!r}")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


# ---------------------------------------------------------------- features

@dataclass
class ClipFeatures:
    """One clip's vectors (clean first, then its augmented copies) and, per vector, whether the
    copy was corrupted (noise or clipping): the clean-vs-corrupted gate learns from those.
    Indexes and iterates like the list of vectors."""

    vectors: list[np.ndarray]
    corrupted: list[bool]

    def __getitem__(self, i):
        return self.vectors[i]

    def __len__(self) -> int:
        return len(self.vectors)

    def __iter__(self):
        return iter(self.vectors)


def _record_features(rec: Record, params: FeatureParams, spec: AugmentSpec | None, seed: int,
                     babble: np.ndarray | None = None) -> ClipFeatures:
    """Clean vector first, then one per augmented copy (same copies every run for a given seed)."""
    x = rec.load()
    out = ClipFeatures([extract(x, params)], [False])
    if spec is not None and (spec.copies > 0 or spec.warps):
        name_key = int.from_bytes(hashlib.sha256(rec.name.encode()).digest()[:4], "little")
        rng = np.random.default_rng([seed, name_key])
        for w, warp, corrupted in augment_wave(x, spec, rng, babble):
            out.vectors.append(extract(w, params, warp=warp))
            out.corrupted.append(corrupted)
    return out


def extract_all(
    records: Sequence[Record],
    params: FeatureParams = DEFAULT_PARAMS,
    *,
    jobs: int = 2,
    spec: AugmentSpec | None = None,
    seed: int = 0,
    progress: bool = True,
    label: str = "features",
    babble: np.ndarray | None = None,
) -> list[ClipFeatures]:
    """Per record: [clean, aug1, ...] vectors, computed by `jobs` processes with a progress bar."""
    return map_records(records, lambda r: _record_features(r, params, spec, seed, babble), jobs=jobs, label=label,
                       progress=progress)


def stack(feats: Sequence[ClipFeatures], records: Sequence[Record], *, augmented: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, speaker) from per-record vector lists; clean vectors only unless `augmented`."""
    X, y, g = [], [], []
    for vecs, r in zip(feats, records):
        use = vecs if augmented else vecs[:1]
        X.extend(use)
        y.extend([r.label] * len(use))
        g.extend([r.speaker] * len(use))
    return np.asarray(X, dtype=np.float32), np.asarray(y), np.asarray(g)


# ---------------------------------------------------------------- fitting

SVM_TEMPERATURE = 3.0  # softmax temperature on the SVM's one-vs-rest decision values (vote counts)


@dataclass
class FitResult:
    estimator: Any  # a DigitEnsemble
    best_params: dict[str, Any]
    clean_only: list[bool]  # per member: fitted on clean (un-augmented) rows only
    cv_accuracy: float | None
    cv_table: list[dict[str, Any]]
    seconds: float
    splits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)


def cv_splits(X: np.ndarray, y: np.ndarray, groups: np.ndarray, clean_mask: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Speaker-grouped folds: one per speaker for few speakers, else 6 grouped folds; validation
    rows are clean (un-augmented) only, so scores reflect real recordings of unheard voices."""
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    n_groups = len(np.unique(groups))
    splitter = LeaveOneGroupOut() if n_groups <= 8 else GroupKFold(n_splits=6)
    out = []
    for tr, va in splitter.split(X, y, groups):
        if clean_mask is not None:
            va = va[clean_mask[va]]
        out.append((tr, va))
    return out


def _member_grids(recipe: Recipe) -> list[tuple[str, dict[str, list[Any]]]]:
    kinds = ["lr", "svm"] if recipe.classifier == "ens" else [recipe.classifier]
    if recipe.grid and len(kinds) == 1:
        return [(kinds[0], recipe.grid)]
    grids = AUG_GRIDS if recipe.augment.copies > 0 else GRIDS
    return [(k, _grid_for(recipe, k, grids)) for k in kinds]


def _grid_for(recipe: Recipe, kind: str, grids: dict[str, dict[str, list[Any]]]) -> dict[str, list[Any]]:
    """The recipe's own grid for this member kind, else the default one from `grids`."""
    return (recipe.grid.get(kind) if recipe.grid else None) or grids[kind]


def fit(X: np.ndarray, y: np.ndarray, groups: np.ndarray, recipe: Recipe, *, clean_mask: np.ndarray | None = None,
        corrupt_mask: np.ndarray | None = None) -> FitResult:
    """Per member (LR and/or RBF SVM): grid search with speaker-grouped CV, refit on all of X;
    the members are combined into a `DigitEnsemble` (probability average)."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from digitd.estimators import DigitEnsemble

    t0 = time.perf_counter()
    splits = cv_splits(X, y, groups, clean_mask) if len(np.unique(groups)) >= 2 else []
    members, temps, best, table, cv_acc, clean_only = [], [], {}, [], [], []
    plan = [(kind, grid, False) for kind, grid in _member_grids(recipe)]
    if recipe.clean_svm and clean_mask is not None and not clean_mask.all():
        plan.append(("svm", _grid_for(recipe, "svm", GRIDS), True))  # clean rows: the full grid is cheap
    for kind, grid, clean in plan:
        if clean:  # the clean specialist: keeps accuracy on clean voices while the others learn noise
            sub = fit(X[clean_mask], y[clean_mask], groups[clean_mask],
                      Recipe(classifier="svm", grid=grid, seed=recipe.seed, jobs=recipe.jobs))
            members.append(sub.estimator.members[0])
            temps.append(SVM_TEMPERATURE)
            best["svm_clean"] = sub.best_params["svm"]
            table += [dict(r, member="svm_clean") for r in sub.cv_table]
            if sub.cv_accuracy is not None:
                cv_acc.append(sub.cv_accuracy)
            clean_only.append(True)
            continue
        clean_only.append(False)
        est = make_estimator(kind)
        if not splits or all(len(v) == 1 for v in grid.values()):
            params = {k: v[0] for k, v in grid.items()}
            fitted = clone(est).set_params(**params).fit(X, y)
        else:
            gs = GridSearchCV(est, grid, cv=splits, n_jobs=recipe.jobs, scoring="accuracy", refit=True)
            gs.fit(X, y)
            fitted, params = gs.best_estimator_, dict(gs.best_params_)
            cv_acc.append(float(gs.best_score_))
            table += [
                {"member": kind, "params": {k.removeprefix("clf__"): v for k, v in p.items()}, "mean": float(m), "std": float(sd)}
                for p, m, sd in zip(gs.cv_results_["params"], gs.cv_results_["mean_test_score"], gs.cv_results_["std_test_score"])
            ]
        members.append(fitted)
        temps.append(SVM_TEMPERATURE if kind == "svm" else 1.0)
        best[kind] = {k.removeprefix("clf__"): v for k, v in params.items()}
    gate = fit_gate(X, clean_mask, corrupt_mask, recipe.seed) if any(clean_only) else None
    ens = DigitEnsemble(members, temps, gate=gate, gated=clean_only, gate_gain=GATE_GAIN)
    return FitResult(ens, best, clean_only, float(np.mean(cv_acc)) if cv_acc else None, table, time.perf_counter() - t0, splits)


# (gain, base) weightings of the CNN member that LOSO also scores, as a diagnostic (no refit needed)
CNN_WEIGHT_GRID = [(0.0, 0.0), (4.0, 0.0), (8.0, 0.0), (4.0, 1.0), (8.0, 1.0), (8.0, 2.0), (16.0, 2.0), (0.0, 4.0), (100.0, 100.0)]
GATE_GAIN = 4.0  # clean member weight = min(1, 4 * P(clean)); picked by LOSO on takes 5-49 only


def fit_gate(X: np.ndarray, clean_mask: np.ndarray, corrupt_mask: np.ndarray | None = None, seed: int = 0):
    """Logistic "clean recording (1) vs corrupted copy (0)" on the same features: the weight of
    the clean-rows member. Copies that were only padded or re-levelled are left out (they are
    clean audio too); without `corrupt_mask` every copy counts as corrupted."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    neg = ~clean_mask if corrupt_mask is None else corrupt_mask & ~clean_mask
    rows = clean_mask | neg
    clf = LogisticRegression(C=0.1, max_iter=3000, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(X[rows], clean_mask[rows].astype(int))


def refit_like(res: FitResult, X: np.ndarray, y: np.ndarray, clean_mask: np.ndarray | None = None,
               corrupt_mask: np.ndarray | None = None):
    """Same members and hyper-parameters, refitted on other data (for out-of-fold scores);
    clean-only members see the clean rows of it only."""
    from sklearn.base import clone

    from digitd.estimators import DigitEnsemble

    def rows(clean: bool) -> slice | np.ndarray:
        return clean_mask if clean and clean_mask is not None else slice(None)

    members = [clone(m).fit(X[rows(c)], y[rows(c)]) for m, c in zip(res.estimator.members, res.clean_only)]
    gate = fit_gate(X, clean_mask, corrupt_mask) if any(res.clean_only) and clean_mask is not None else None
    return DigitEnsemble(members, list(res.estimator.temperatures), gate=gate, gated=res.clean_only, gate_gain=GATE_GAIN)


def make_detector(seed: int = 0):
    """Digit (1) vs anything else (0) on the same features. Gradient-boosted trees: a linear
    detector separated noise fine but not non-digit words (measured: 12 % vs 78 % rejected)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=150, class_weight="balanced", random_state=seed)


def fit_detector(X_speech: np.ndarray, X_garbage: np.ndarray, seed: int = 0):
    X = np.vstack([X_speech, X_garbage])
    y = np.r_[np.ones(len(X_speech), int), np.zeros(len(X_garbage), int)]
    return make_detector(seed).fit(X, y)


@dataclass
class _OofData:
    """What each out-of-fold task reads (sent to each worker once)."""

    res: FitResult
    X: np.ndarray
    y: np.ndarray
    X_garbage: np.ndarray
    X_pos_extra: np.ndarray | None
    clean_mask: np.ndarray | None
    corrupt_mask: np.ndarray | None


def _oof_fold(d: _OofData, split: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    tr, va = split
    ens = refit_like(d.res, d.X[tr], d.y[tr], None if d.clean_mask is None else d.clean_mask[tr],
                     None if d.corrupt_mask is None else d.corrupt_mask[tr])
    pos = d.X[tr] if d.X_pos_extra is None or not len(d.X_pos_extra) else np.vstack([d.X[tr], d.X_pos_extra])
    ens.detector = fit_detector(pos, d.X_garbage)
    return ens.predict_proba(d.X[va]).max(axis=1)


def oof_confidence(res: FitResult, X: np.ndarray, y: np.ndarray, X_garbage: np.ndarray,
                   X_pos_extra: np.ndarray | None = None, clean_mask: np.ndarray | None = None,
                   corrupt_mask: np.ndarray | None = None, jobs: int = 2) -> np.ndarray:
    """Out-of-fold confidence (digit prob x speech prob) of every clean validation row: what a
    new speaker's true digits score, used to pick the reject threshold honestly. One task per fold."""
    splits = [(tr, va) for tr, va in res.splits if len(va)]
    if not splits:
        return np.zeros(0)
    data = _OofData(replace(res, splits=[]), X, y, X_garbage, X_pos_extra, clean_mask, corrupt_mask)
    return np.concatenate(map_tasks(_oof_fold, splits, shared=data, jobs=jobs, label="out-of-fold confidences"))


@dataclass
class LosoData:
    """Everything a LOSO fold reads: sent to each worker once, not with every fold."""

    feats: list[ClipFeatures]
    records: Sequence[Record]
    recipe: Recipe
    cnn_specs: Sequence[Sequence[np.ndarray]] | None = None
    join_fold: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None


@dataclass
class FoldResult:
    accuracy: float
    confidences: list[float]
    weighting: dict[str, float]  # "gain G base B" -> the held-out speaker's accuracy with that CNN weighting


def loso_fold(data: LosoData, sp: str) -> FoldResult:
    """One LOSO fold (a task): train on every usable record but `sp`'s, test on `sp`'s clean takes.
    Deterministic: every seed comes from the recipe."""
    records, feats, recipe = data.records, data.feats, data.recipe
    spk = np.asarray([r.speaker for r in records])
    usable = np.asarray([r.split in ("train", "test", "extra", "synth") for r in records])
    tr = np.flatnonzero(usable & (spk != sp))
    te = np.flatnonzero(spk == sp)
    tr_feats = [feats[i] for i in tr]
    Xtr, ytr, gtr = stack(tr_feats, [records[i] for i in tr], augmented=True)
    res = fit(Xtr, ytr, gtr, recipe, clean_mask=_clean_mask(tr_feats), corrupt_mask=_corrupt_mask(tr_feats))
    Xte, yte, _ = stack([feats[i] for i in te], [records[i] for i in te], augmented=False)
    weighting: dict[str, float] = {}
    if recipe.cnn and data.cnn_specs is not None:
        from digitd.model import CnnMember
        from train.cnn import fit_member, member_probs

        specs = data.cnn_specs
        classes = [str(c) for c in res.estimator.classes_]
        member = fit_member([specs[i] for i in tr], [records[i].label for i in tr], classes,
                            epochs=recipe.cnn_epochs, gain=recipe.cnn_gain, base=recipe.cnn_base, seed=recipe.seed,
                            nets=recipe.cnn_nets, label=f"CNN without {sp}", jobs=recipe.jobs)
        parts, pc = res.estimator.parts(Xte), member_probs(member, [specs[i][0] for i in te])
        probs = member.combine(parts, pc) * parts["speech"][:, None]
        for gain, base in CNN_WEIGHT_GRID:
            q = CnnMember(member.nets, gain, base).combine(parts, pc)
            weighting[f"gain {gain:g} base {base:g}"] = float(np.mean(np.asarray(classes)[q.argmax(axis=1)] == yte))
    else:
        probs = res.estimator.predict_proba(Xte)
    if data.join_fold is not None:
        probs = data.join_fold(tr, te, probs)
    acc = float(np.mean(np.asarray(res.estimator.classes_)[probs.argmax(axis=1)] == yte))
    return FoldResult(acc, probs.max(axis=1).tolist(), weighting)


def loso(
    feats: list[ClipFeatures],
    records: Sequence[Record],
    recipe: Recipe,
    *,
    on_speaker: Callable[[str, float], None] | None = None,
    cnn_specs: Sequence[Sequence[np.ndarray]] | None = None,
    speakers: Sequence[str] | None = None,
    join_fold: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Leave one speaker out: train with `recipe` (tuning included) on every other speaker's
    takes (plus any extra corpus and synthetic voices), test on every clean take of the
    held-out FSDD speaker. With `recipe.cnn`, `cnn_specs` (per record, like `feats`) trains the
    convolutional member per fold too, and the held-out speaker is scored by both.
    `join_fold(train_idx, test_idx, probs)` lets a further member (the speech embedding, fitted
    by the caller on the same training records) join the fold's probabilities.
    The folds are tasks of `train.parallel.map_tasks`: local processes, or a Dask cluster."""
    speakers = list(speakers or sorted({r.speaker for r in records if r.split in ("train", "test")}))
    data = LosoData(list(feats), records, recipe, cnn_specs, join_fold)
    folds = map_tasks(loso_fold, speakers, shared=data, jobs=recipe.jobs, label="LOSO folds",
                      on_result=(lambda sp, f: on_speaker(sp, f.accuracy)) if on_speaker else None)
    per = {sp: f.accuracy for sp, f in zip(speakers, folds)}
    conf = [c for f in folds for c in f.confidences]  # the held-out speakers' confidences: what a new voice's true digits score
    weighting: dict[str, dict[str, float]] = {}  # CNN weight (gain, base) -> per-speaker accuracy, a diagnostic
    for sp, f in zip(speakers, folds):
        for k, acc in f.weighting.items():
            weighting.setdefault(k, {})[sp] = acc
    vals = list(per.values())
    out = {"mean": float(np.mean(vals)), "worst": float(np.min(vals)), "per_speaker": per,
           "confidence_quantiles": {f"{q:g}%": float(np.percentile(conf, q)) for q in (1, 1.5, 2, 3, 5)}}
    if weighting:
        out["cnn_weighting"] = {k: {"mean": float(np.mean(list(v.values()))), "worst": float(min(v.values())), "per_speaker": v}
                                for k, v in weighting.items()}
    return out


def _corrupt_mask(feats: Sequence[ClipFeatures]) -> np.ndarray:
    """Per stacked row (augmented=True order): a copy with noise or clipping."""
    return np.asarray([c for f in feats for c in f.corrupted], dtype=bool)


def _clean_mask(feats: Sequence[ClipFeatures]) -> np.ndarray:
    mask: list[bool] = []
    for vecs in feats:
        mask.append(True)
        mask.extend([False] * (len(vecs) - 1))
    return np.asarray(mask)
