"""The numpy runtime scores exactly like scikit-learn, and the daemon side never imports sklearn."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from digitd.features import DEFAULT_PARAMS
from digitd.model import DigitModel, ModelError, load_model, save_model
from digitd.runtime import compile_estimator, score, sklearn_scores


def _blobs(n_classes=10, n=400, dim=DEFAULT_PARAMS.dim, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, dim)) * 2
    y = rng.integers(0, n_classes, n)
    x = centers[y] + rng.standard_normal((n, dim)) * 3
    return x.astype(np.float32), np.array([str(v) for v in y])


@pytest.mark.parametrize(
    "est",
    [
        make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000)),
        make_pipeline(StandardScaler(), SVC(C=3, gamma="scale")),
        make_pipeline(StandardScaler(), SVC(C=1, gamma=0.001)),
        make_pipeline(StandardScaler(), SVC(kernel="linear", C=0.1)),
        make_pipeline(StandardScaler(), LinearSVC(C=0.1)),
    ],
    ids=["lr", "svc-rbf-scale", "svc-rbf-small-gamma", "svc-linear", "linearsvc"],
)
def test_compiled_runtime_equals_sklearn(est):
    x, y = _blobs()
    est.fit(x[:300], y[:300])
    rt = compile_estimator(est)
    want, got = sklearn_scores(est, x[300:]), score(rt, x[300:])
    assert want.shape == got.shape == (100, 10)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got.argmax(1) == est.predict(x[300:]).astype(int)).all()


def test_daemon_side_loads_and_scores_without_importing_sklearn(tmp_path):
    x, y = _blobs()
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    path = tmp_path / "m.npz"
    save_model(DigitModel(est, sorted(set(y))), path, {"note": "test"}, check_x=x[:50])
    code = (
        "import sys, json, numpy as np\n"
        "from digitd.model import load_model\n"
        f"m = load_model({str(path)!r})\n"
        "p = m.predict_wave((np.random.default_rng(1).standard_normal(4000) * 0.1).astype(np.float32))\n"
        "print(json.dumps({'label': p.label, 'sklearn': 'sklearn' in sys.modules, 'signal': 'scipy.signal' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    assert res["label"] in set(y)
    assert res["sklearn"] is False
    assert res["signal"] is False
    # and the loaded model scores like the estimator it was made from
    m = load_model(path)
    np.testing.assert_allclose(m.scores(x[:20]), est.predict_proba(x[:20]), atol=1e-5)


def test_runtime_that_disagrees_is_refused(tmp_path, monkeypatch):
    x, y = _blobs()
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    import digitd.model as dm

    monkeypatch.setattr(dm, "score", lambda rt, f: score(rt, f) + 0.01)
    with pytest.raises(ModelError, match="disagrees"):
        save_model(DigitModel(est, sorted(set(y))), tmp_path / "m.npz", {}, check_x=x[:10])
    assert not (tmp_path / "m.npz").exists()


def test_binary_logistic_regression_detector_matches_sklearn():
    x, y = _blobs(n_classes=2)
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[:300], y[:300])
    np.testing.assert_allclose(score(compile_estimator(est), x[300:]), est.predict_proba(x[300:]), atol=1e-6)


def test_hist_gradient_boosting_detector_matches_sklearn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _blobs(n_classes=2)
    est = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x[:300], y[:300])
    np.testing.assert_allclose(score(compile_estimator(est), x[300:]), est.predict_proba(x[300:]), atol=1e-9)


def test_gated_ensemble_compiles_and_matches_sklearn():
    """A clean-member gate (binary LR) weights one member per row; the numpy runtime agrees."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from digitd.estimators import DigitEnsemble
    from digitd.runtime import compile_estimator, score

    x, y = _blobs()
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    svm = make_pipeline(StandardScaler(), SVC(C=3, gamma=0.003)).fit(x, y)
    svm2 = make_pipeline(StandardScaler(), SVC(C=1, gamma=0.01)).fit(x[:200], y[:200])
    flag = (x[:, 0] > 0).astype(int)
    gate = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, flag)
    ens = DigitEnsemble([lr, svm, svm2], [1.0, 3.0, 3.0], gate=gate, gated=[False, False, True], gate_gain=4.0)
    w = ens.member_weights(x)
    assert w[:, 2].min() < 0.1 and w[:, 2].max() > 0.9  # the gate really switches the member
    rt = compile_estimator(ens)
    np.testing.assert_allclose(score(rt, x), ens.predict_proba(x), atol=1e-6)
    ungated = DigitEnsemble([lr, svm, svm2], [1.0, 3.0, 3.0])
    assert not np.allclose(ungated.predict_proba(x), ens.predict_proba(x))


def test_loaded_model_holds_arrays_only_and_scores_the_same(tmp_path):
    x, y = _blobs()
    est = make_pipeline(StandardScaler(), SVC(C=3, gamma=0.003)).fit(x, y)
    path = tmp_path / "m.npz"
    save_model(DigitModel(est, sorted(set(y))), path, {"note": "test"}, check_x=x[:50])
    lean = load_model(path)
    assert lean.estimator is None  # the scikit-learn copy lives in its own file, for the trainer
    assert path.with_suffix(".sklearn.joblib").is_file()
    assert lean.runtime["sv"].dtype == np.float32  # support vectors stored in single precision
    np.testing.assert_allclose(lean.scores(x[:30]), sklearn_scores(est, x[:30]), atol=1e-6)


def test_prepared_svc_scores_the_same_and_is_never_saved(tmp_path):
    """`prepare` caches the support vectors' squared norms at load and lays the vectors out
    column by column (the kernel's product then reads them in one sweep); a loaded model saved
    again writes the file it was read from, without the cache. The same scores up to float32
    rounding (the product sums in another order), the same labels."""
    from digitd.model import read_bundle
    from digitd.runtime import prepare

    x, y = _blobs()
    est = make_pipeline(StandardScaler(), SVC(C=3, gamma="scale")).fit(x[:300], y[:300])
    rt = compile_estimator(est)
    plain = score(rt, x[300:])
    same_layout = score(dict(rt, sv=np.asfortranarray(rt["sv"])), x[300:])  # the norms computed per call
    np.testing.assert_array_equal(score(prepare(rt), x[300:]), same_layout)  # the cached norms change nothing
    np.testing.assert_allclose(same_layout, plain, rtol=1e-5, atol=1e-7)
    assert (score(rt, x[300:]).argmax(1) == plain.argmax(1)).all()
    assert "sv_sq" in rt and rt["sv"].flags.f_contiguous
    path = tmp_path / "m.npz"
    save_model(DigitModel(est, sorted(set(y))), path, {}, check_x=x[:50])
    loaded = load_model(path)
    assert "sv_sq" in loaded.runtime
    np.testing.assert_allclose(loaded.scores(x[300:]), plain, rtol=1e-5, atol=1e-7)
    again = tmp_path / "again.npz"
    save_model(loaded, again, {})
    assert "sv_sq" not in read_bundle(again)["runtime"]
    assert read_bundle(again)["runtime"]["sv"].flags.c_contiguous


def test_float16_support_vectors_are_stored_half_and_scored_in_float32(tmp_path):
    """save_model(sv_float16=True) halves the support vectors on disk; load widens them back."""
    from digitd.model import read_bundle

    x, y = _blobs()
    est = make_pipeline(StandardScaler(), SVC(C=3, gamma="scale")).fit(x[:300], y[:300])
    full, half = tmp_path / "full.npz", tmp_path / "half.npz"
    save_model(DigitModel(est, sorted(set(y))), full, {}, check_x=x[:50])
    save_model(load_model(full), half, {}, sv_float16=True)
    assert read_bundle(half)["runtime"]["sv"].dtype == np.float16
    assert half.stat().st_size < 0.65 * full.stat().st_size
    m = load_model(half)
    assert m.runtime["sv"].dtype == np.float32
    np.testing.assert_array_equal(m.runtime["sv"], read_bundle(half)["runtime"]["sv"].astype(np.float32))
    np.testing.assert_allclose(m.scores(x[300:]), load_model(full).scores(x[300:]), atol=1e-2)
    assert (m.scores(x[300:]).argmax(1) == load_model(full).scores(x[300:]).argmax(1)).all()
