"""Feature extraction in parallel, speaker-grouped hyper-parameter search, fitting and LOSO.

Hyper-parameters are chosen by cross-validation grouped by speaker on the training data only,
because what matters is accuracy on voices the model never heard, not on new takes of old ones.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from digitd.features import DEFAULT_PARAMS, FeatureParams, extract
from train.augment import AugmentSpec, augment_wave
from train.data import Record

GRIDS: dict[str, dict[str, list[Any]]] = {
    "lr": {"clf__C": [0.03, 0.1, 0.3, 1.0]},
    "svm": {"clf__C": [3.0, 10.0, 30.0], "clf__gamma": [0.001, 0.003, 0.006]},
}


@dataclass
class Recipe:
    """Everything needed to retrain the same way (stored in the model card; LOSO reuses it)."""

    classifier: str = "lr"
    grid: dict[str, list[Any]] = field(default_factory=dict)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    seed: int = 0
    jobs: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        d = dict(d)
        d["augment"] = AugmentSpec(**d.get("augment", {}))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def make_estimator(kind: str, seed: int = 0):
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

def _record_features(rec: Record, params: FeatureParams, spec: AugmentSpec | None, seed: int) -> list[np.ndarray]:
    """Clean vector first, then one per augmented copy (same order every run for a given seed)."""
    x = rec.load()
    out = [extract(x, params)]
    if spec is not None and spec.copies > 0:
        rng = np.random.default_rng([seed, abs(hash(rec.name)) % (2**31)])
        for w in augment_wave(x, spec, rng):
            out.append(extract(w, params))
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
) -> list[list[np.ndarray]]:
    """Per record: [clean, aug1, ...] vectors, computed by `jobs` processes with a progress bar."""
    from joblib import Parallel, delayed
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    results: list[list[np.ndarray]] = []
    batch = 32
    chunks = [records[i : i + batch] for i in range(0, len(records), batch)]

    def work(chunk: Sequence[Record]) -> list[list[np.ndarray]]:
        return [_record_features(r, params, spec, seed) for r in chunk]

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not progress, transient=True,
    ) as bar:
        task = bar.add_task(label, total=len(records))
        gen = Parallel(n_jobs=jobs, return_as="generator")(delayed(work)(c) for c in chunks)
        for chunk_out in gen:
            results.extend(chunk_out)
            bar.advance(task, len(chunk_out))
    return results


def stack(feats: list[list[np.ndarray]], records: Sequence[Record], *, augmented: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, speaker) from per-record vector lists; clean vectors only unless `augmented`."""
    X, y, g = [], [], []
    for vecs, r in zip(feats, records):
        use = vecs if augmented else vecs[:1]
        X.extend(use)
        y.extend([r.label] * len(use))
        g.extend([r.speaker] * len(use))
    return np.asarray(X, dtype=np.float32), np.asarray(y), np.asarray(g)


# ---------------------------------------------------------------- fitting

@dataclass
class FitResult:
    estimator: Any
    best_params: dict[str, Any]
    cv_accuracy: float | None
    cv_table: list[dict[str, Any]]
    seconds: float


def fit(X: np.ndarray, y: np.ndarray, groups: np.ndarray, recipe: Recipe, *, clean_mask: np.ndarray | None = None) -> FitResult:
    """Grid search with speaker-grouped CV (one fold per speaker), then refit on all of X.

    Validation folds score only clean (un-augmented) rows when `clean_mask` is given, so the
    choice reflects real recordings of a new voice.
    """
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut

    t0 = time.perf_counter()
    est = make_estimator(recipe.classifier, recipe.seed)
    grid = recipe.grid or GRIDS[recipe.classifier]
    n_groups = len(np.unique(groups))
    if n_groups < 2 or all(len(v) == 1 for v in grid.values()):
        best = {k: v[0] for k, v in grid.items()}
        final = clone(est).set_params(**best).fit(X, y)
        return FitResult(final, best, None, [], time.perf_counter() - t0)
    splits = []
    for tr, va in LeaveOneGroupOut().split(X, y, groups):
        if clean_mask is not None:
            va = va[clean_mask[va]]
        splits.append((tr, va))
    gs = GridSearchCV(est, grid, cv=splits, n_jobs=recipe.jobs, scoring="accuracy", refit=True)
    gs.fit(X, y)
    table = [
        {"params": {k.removeprefix("clf__"): v for k, v in p.items()}, "mean": float(m), "std": float(s)}
        for p, m, s in zip(gs.cv_results_["params"], gs.cv_results_["mean_test_score"], gs.cv_results_["std_test_score"])
    ]
    return FitResult(gs.best_estimator_, dict(gs.best_params_), float(gs.best_score_), table, time.perf_counter() - t0)


def loso(
    feats: list[list[np.ndarray]],
    records: Sequence[Record],
    recipe: Recipe,
    *,
    on_speaker: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Leave one speaker out: train with `recipe` (tuning included) on the other speakers' takes
    (all of them), test on every clean take of the held-out speaker."""
    speakers = sorted({r.speaker for r in records})
    per: dict[str, float] = {}
    idx_by = np.asarray([r.speaker for r in records])
    for sp in speakers:
        tr = [i for i in range(len(records)) if idx_by[i] != sp]
        te = [i for i in range(len(records)) if idx_by[i] == sp]
        Xtr, ytr, gtr = stack([feats[i] for i in tr], [records[i] for i in tr], augmented=True)
        clean = _clean_mask([feats[i] for i in tr])
        res = fit(Xtr, ytr, gtr, recipe, clean_mask=clean)
        Xte, yte, _ = stack([feats[i] for i in te], [records[i] for i in te], augmented=False)
        acc = float(np.mean(res.estimator.predict(Xte) == yte))
        per[sp] = acc
        if on_speaker:
            on_speaker(sp, acc)
    vals = list(per.values())
    return {"mean": float(np.mean(vals)), "worst": float(np.min(vals)), "per_speaker": per}


def _clean_mask(feats: list[list[np.ndarray]]) -> np.ndarray:
    mask: list[bool] = []
    for vecs in feats:
        mask.append(True)
        mask.extend([False] * (len(vecs) - 1))
    return np.asarray(mask)
