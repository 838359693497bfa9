"""Scoring fitted scikit-learn classifiers with numpy alone.

Importing scikit-learn costs ~1.5 s and ~125 MB of resident memory, more than the whole
rest of the daemon. At save time the trainer "compiles" the fitted estimator into a few
arrays (`compile_estimator`); the daemon scores with `score` and never imports sklearn.
`save_model` checks that the compiled scores equal sklearn's before writing the file.

Supported: Pipeline(StandardScaler..., LogisticRegression | SVC(rbf/linear) | LinearSVC),
a soft VotingClassifier of such pipelines, and digitd.estimators.DigitEnsemble (member
probabilities averaged, times a speech detector's P(speech)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

Runtime = dict[str, Any]


class NotCompilable(Exception):
    """The estimator has a part this module cannot score without scikit-learn."""


def compile_estimator(est: Any) -> Runtime:
    """Fitted estimator -> {"kind": ..., arrays...} holding only numpy arrays and plain values."""
    name = type(est).__name__
    if name == "Pipeline":
        steps = [s for _, s in est.steps if s is not None and s != "passthrough"]
        pre = []
        for s in steps[:-1]:
            if type(s).__name__ != "StandardScaler":
                raise NotCompilable(f"pipeline step {type(s).__name__}")
            mean = s.mean_ if s.mean_ is not None else 0.0
            scale = s.scale_ if s.scale_ is not None else 1.0
            pre.append({"mean": np.asarray(mean, np.float64), "scale": np.asarray(scale, np.float64)})
        out = compile_estimator(steps[-1])
        out["pre"] = pre + out.get("pre", [])
        return out
    if name == "DigitEnsemble":
        members = []
        for m, t in zip(est.members, est.temperatures):
            c = compile_estimator(m)
            c["temperature"] = float(t)
            members.append(c)
        out = {"kind": "ensemble", "members": members}
        gate = getattr(est, "gate", None)
        if gate is not None and any(est.gated):
            out["gate"] = compile_estimator(gate)
            out["gate_index"] = int(list(gate.classes_).index(1))
            out["gated"] = np.asarray(est.gated, dtype=bool)
            out["gate_gain"] = float(est.gate_gain)
        if est.detector is not None:
            out["detector"] = compile_estimator(est.detector)
            out["speech_index"] = int(list(est.detector.classes_).index(1))
        return out
    if name == "HistGradientBoostingClassifier":
        cat = getattr(est, "is_categorical_", None)
        if len(est.classes_) != 2 or (cat is not None and np.any(cat)):
            raise NotCompilable("HistGradientBoosting: only binary, numerical features")
        nodes = [pred.nodes for (pred,) in est._predictors]
        width = max(len(n) for n in nodes)

        def stack(field: str, dtype: type, fill: Any) -> np.ndarray:
            out = np.full((len(nodes), width), fill, dtype=dtype)
            for t, n in enumerate(nodes):
                out[t, : len(n)] = n[field]
            return out

        # all trees side by side (padding nodes are leaves), so scoring walks every tree at once
        return {"kind": "hgb_binary", "baseline": float(np.ravel(est._baseline_prediction)[0]),
                "feature": stack("feature_idx", np.int64, 0), "threshold": stack("num_threshold", np.float64, 0.0),
                "left": stack("left", np.int64, 0), "right": stack("right", np.int64, 0),
                "missing_left": stack("missing_go_to_left", bool, True), "leaf": stack("is_leaf", bool, True),
                "value": stack("value", np.float64, 0.0)}
    if name == "VotingClassifier":
        if est.voting != "soft":
            raise NotCompilable("hard voting")
        w = est.weights if est.weights is not None else [1.0] * len(est.estimators_)
        return {"kind": "average", "members": [compile_estimator(e) for e in est.estimators_], "weights": list(map(float, w))}
    if name == "LogisticRegression":
        return {"kind": "lr", "coef": est.coef_.astype(np.float64), "intercept": est.intercept_.astype(np.float64)}
    if name == "LinearSVC":
        return {"kind": "linear_softmax", "coef": est.coef_.astype(np.float64), "intercept": est.intercept_.astype(np.float64)}
    if name == "SVC":
        if est.kernel not in ("rbf", "linear") or est.decision_function_shape != "ovr":
            raise NotCompilable(f"SVC kernel={est.kernel} shape={est.decision_function_shape}")
        return {
            "kind": "svc",
            "kernel": est.kernel,
            "gamma": float(est._gamma),
            # float32 halves the largest arrays of a model (thousands of support vectors); the
            # kernel's error stays under 1e-8 in the probabilities (checked at save time)
            "sv": est.support_vectors_.astype(np.float32),
            "dual": est.dual_coef_.astype(np.float64),
            "intercept": est.intercept_.astype(np.float64),
            "n_support": est.n_support_.astype(np.int64),
            "n_classes": len(est.classes_),
        }
    raise NotCompilable(name)


def _softmax(d: np.ndarray) -> np.ndarray:
    e = np.exp(d - d.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


DERIVED = ("sv_sq",)  # keys `prepare` adds: computed at load, never written to a model file


def prepare(rt: Runtime) -> Runtime:
    """Ready a runtime read from a model file for scoring (in place; returns `rt`): float16
    support vectors widened to float32 and laid out column by column, and what scoring would
    otherwise recompute per call, each RBF SVC's squared support-vector norms. Without the norms
    every utterance squares the whole support-vector matrix again, a transient copy as large as
    the model (15 MB for v6). Column-major vectors make the kernel's product `x @ sv.T` one
    contiguous sweep: v13's 11,032 x 338 SVC 437 -> 280 us a word, the whole pipeline ~7% faster."""
    if isinstance(rt, dict):
        if rt.get("kind") == "svc":
            sv = np.asarray(rt["sv"])  # stored as half (`half_support_vectors`): scored in float32
            if sv.dtype == np.float16 or not sv.flags.f_contiguous:
                rt["sv"] = sv = sv.astype(np.float32 if sv.dtype == np.float16 else sv.dtype, order="F")
            if rt.get("kernel") == "rbf" and "sv_sq" not in rt:  # squared in blocks of rows: the same sums, no model-sized temporary
                rt["sv_sq"] = np.concatenate([(sv[i : i + 512] ** 2).sum(1) for i in range(0, len(sv), 512)] or [sv.sum(1)])
        for v in rt.values():
            if isinstance(v, (dict, list)):
                prepare(v)  # type: ignore[arg-type]
    elif isinstance(rt, list):
        for v in rt:
            prepare(v)
    return rt


def half_support_vectors(rt: Any) -> Any:
    """A copy of `rt` with every SVC's support vectors as float16: half the bytes of a model file
    (they are most of it). `prepare` widens them to float32 at load, so memory and speed are
    unchanged; the kernel then sees vectors rounded to 11 bits, which moves probabilities by up to
    ~5e-3 (scripts/half_model.py measures it on real clips before a model is shipped so)."""
    if isinstance(rt, dict):
        out = {k: half_support_vectors(v) for k, v in rt.items() if k not in DERIVED}
        if rt.get("kind") == "svc":
            out["sv"] = np.asarray(rt["sv"]).astype(np.float16, order="C")
        return out
    if isinstance(rt, list):
        return [half_support_vectors(v) for v in rt]
    return rt


def stored(rt: Any) -> Any:
    """`rt` without the keys `prepare` added: what a model file holds."""
    if isinstance(rt, dict):
        out = {k: stored(v) for k, v in rt.items() if k not in DERIVED}
        if out.get("kind") == "svc":
            out["sv"] = np.ascontiguousarray(out["sv"])  # the file keeps row-major vectors, as it was written
        return out
    if isinstance(rt, list):
        return [stored(v) for v in rt]
    return rt


def _svc_decision(rt: Runtime, x: np.ndarray) -> np.ndarray:
    """sklearn's SVC.decision_function (ovr shape, built from one-vs-one votes)."""
    sv = rt["sv"]
    xs = x.astype(sv.dtype)  # the kernel in the vectors' own precision: no float64 copy of them
    if rt["kernel"] == "rbf":
        sv_sq = rt["sv_sq"] if "sv_sq" in rt else (sv**2).sum(1)
        d2 = (xs**2).sum(1)[:, None] + sv_sq[None, :] - 2 * xs @ sv.T
        k = np.exp(-rt["gamma"] * np.maximum(d2, 0.0)).astype(np.float64)
    else:
        k = (xs @ sv.T).astype(np.float64)
    n = rt["n_classes"]
    starts = np.concatenate([[0], np.cumsum(rt["n_support"])])
    dual = rt["dual"]
    # part[:, c, r] = class c's kernel columns times dual row r: one product per class, then every
    # one-vs-one pair (i < j, sklearn's order) is part[i, j - 1] + part[j, i] + its intercept
    part = np.stack([k[:, starts[c] : starts[c + 1]] @ dual[:, starts[c] : starts[c + 1]].T for c in range(n)], axis=1)
    i, j = np.triu_indices(n, 1)
    dec = part[:, i, j - 1] + part[:, j, i] + rt["intercept"]
    # sklearn.utils.multiclass._ovr_decision_function(dec < 0, -dec, n)
    to_i = np.zeros((len(i), n))
    to_i[np.arange(len(i)), i] = 1.0
    to_j = np.zeros((len(i), n))
    to_j[np.arange(len(i)), j] = 1.0
    wins = (dec > 0).astype(np.float64)
    votes = wins @ to_i + (1.0 - wins) @ to_j
    conf = dec @ (to_i - to_j)
    return votes + conf / (3 * (np.abs(conf) + 1))


def score(rt: Runtime, x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, n_classes): predict_proba for LR, softmax of decision otherwise."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    kind = rt["kind"]
    if kind == "ensemble":
        parts = ensemble_parts(rt, x)
        return parts["digit"] * parts["speech"][:, None]
    for step in rt.get("pre", []):
        x = (x - step["mean"]) / step["scale"]
    if kind == "hgb_binary":
        n_trees = rt["leaf"].shape[0]
        tree = np.arange(n_trees)[None, :]
        node = np.zeros((len(x), n_trees), dtype=np.int64)
        rows = np.arange(len(x))[:, None]
        while True:
            inner = ~rt["leaf"][tree, node]
            if not inner.any():
                break
            v = x[rows, rt["feature"][tree, node]]
            go_left = np.where(np.isnan(v), rt["missing_left"][tree, node], v <= rt["threshold"][tree, node])
            node = np.where(inner, np.where(go_left, rt["left"][tree, node], rt["right"][tree, node]), node)
        p1 = 1.0 / (1.0 + np.exp(-(rt["baseline"] + rt["value"][tree, node].sum(axis=1))))
        return np.stack([1.0 - p1, p1], axis=1)
    t = rt.get("temperature", 1.0)
    if kind == "lr" and rt["coef"].shape[0] == 1:  # binary: sklearn's predict_proba is a sigmoid
        z = x @ rt["coef"][0] + rt["intercept"][0]
        p1 = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1.0 - p1, p1], axis=1)
    if kind == "average":
        w = np.asarray(rt["weights"], dtype=np.float64)
        return sum(wi * score(m, x) for wi, m in zip(w, rt["members"])) / w.sum()
    if kind == "lr":
        return _softmax(x @ rt["coef"].T + rt["intercept"])
    if kind == "linear_softmax":
        return _softmax((x @ rt["coef"].T + rt["intercept"]) * t)
    if kind == "svc":
        return _softmax(_svc_decision(rt, x) * t)
    raise ValueError(f"unknown runtime kind {kind!r}")


def ensemble_parts(rt: Runtime, x: np.ndarray) -> dict[str, np.ndarray]:
    """The pieces `score` multiplies, for a caller that adds a member of its own (digitd.cnn):
    digit (n, classes) = weighted member average, weight (n,) = the sum of member weights,
    speech (n,) = the detector's P(speech), clean (n,) = the gate's clipped weight (0 without a gate).
    A runtime that is not an ensemble is one member with weight 1 and no detector."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = len(x)
    if rt["kind"] != "ensemble":
        return {"digit": score(rt, x), "weight": np.ones(n), "speech": np.ones(n), "clean": np.zeros(n)}
    for step in rt.get("pre", []):
        x = (x - step["mean"]) / step["scale"]
    parts = np.asarray([score(m, x) for m in rt["members"]])  # (members, n, classes)
    w = np.ones((n, len(parts)))
    clean = np.zeros(n)
    if "gate" in rt:
        clean = np.clip(rt["gate_gain"] * score(rt["gate"], x)[:, rt["gate_index"]], 0.0, 1.0)
        w[:, rt["gated"]] = clean[:, None]
    speech = score(rt["detector"], x)[:, rt["speech_index"]] if "detector" in rt else np.ones(n)
    return {"digit": np.einsum("nm,mnc->nc", w, parts) / w.sum(axis=1, keepdims=True), "weight": w.sum(axis=1),
            "speech": speech, "clean": clean}


def sklearn_scores(est: Any, x: np.ndarray) -> np.ndarray:
    """The same quantity computed by scikit-learn, for checking a compiled runtime."""
    x = np.atleast_2d(x)
    if hasattr(est, "predict_proba"):  # SVC without probability=True does not have it
        return est.predict_proba(x)
    d = np.atleast_2d(est.decision_function(x))
    return _softmax(d)
