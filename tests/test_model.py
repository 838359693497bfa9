"""Model bundle + card: round trip, and every kind of bad file refused with a one-line ModelError."""

import json

import numpy as np
import pytest

from digitd.features import FeatureParams
from digitd.model import DigitModel, Features, ModelError, card_path, load_model, save_model, sha256_file
from train.data import load_folder
from train.trainer import Recipe, extract_all, fit, stack


@pytest.fixture(scope="module")
def tiny(small_subset):
    recs, _ = load_folder(small_subset, check_audio=False)
    feats = extract_all(recs, jobs=1, progress=False)
    X, y, g = stack(feats, recs, augmented=False)
    res = fit(X, y, g, Recipe(classifier="lr", grid={"clf__C": [0.1]}, jobs=1))
    model = DigitModel(res.estimator, [str(c) for c in res.estimator.classes_])
    return model, X


def _save(model, tmp_path, name="m"):
    path = tmp_path / f"{name}.npz"
    save_model(model, path, {"command": "test"})
    return path


def test_round_trip_same_predictions(tiny, tmp_path):
    model, X = tiny
    path = _save(model, tmp_path)
    card = json.loads(card_path(path).read_text())
    assert card["sha256"] == sha256_file(path) and card["command"] == "test"
    loaded = load_model(path)
    # the loaded model scores with the numpy runtime (float64); sklearn scores float32 input in float32
    np.testing.assert_allclose(loaded.scores(X), model.scores(X), atol=1e-6)
    p = loaded.classify(Features(X[0]))
    assert p.label in loaded.classes and 0.0 < p.confidence <= 1.0
    assert abs(sum(p.probs.values()) - 1.0) < 1e-6


def test_sha_mismatch_refused(tiny, tmp_path):
    path = _save(tiny[0], tmp_path)
    card = json.loads(card_path(path).read_text())
    card["sha256"] = "0" * 64
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="SHA-256"):
        load_model(path)


def _resign(path):
    card = json.loads(card_path(path).read_text())
    card["sha256"] = sha256_file(path)
    card_path(path).write_text(json.dumps(card))


def test_feature_param_mismatch_refused(tiny, tmp_path):
    model = DigitModel(tiny[0].estimator, tiny[0].classes, FeatureParams(nfilt=20))
    path = _save(model, tmp_path)
    with pytest.raises(ModelError, match="nfilt"):
        load_model(path)


def test_wrong_format_refused(tiny, tmp_path):
    from digitd.model import read_bundle, write_bundle

    path = _save(tiny[0], tmp_path)
    bundle = read_bundle(path)
    write_bundle(bundle | {"format": "something-else/1"}, path)
    _resign(path)
    with pytest.raises(ModelError, match="expected format"):
        load_model(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_type", "no_card", "missing"])
def test_damaged_files_refused(tiny, tmp_path, damage):
    path = _save(tiny[0], tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        _resign(path)
    elif damage == "garbage":
        path.write_bytes(b"this is not a model at all" * 10)
        _resign(path)
    elif damage == "wrong_type":
        np.savez(path, x=np.arange(3))  # an npz, but no bundle in it
        _resign(path)
    elif damage == "no_card":
        card_path(path).unlink()
    elif damage == "missing":
        path.unlink()
    with pytest.raises(ModelError) as e:
        load_model(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_detector_scales_confidence_not_the_label(tiny, small_subset):
    from digitd.estimators import DigitEnsemble
    from train.garbage import garbage_clips
    from train.trainer import fit_detector

    model, X = tiny
    rng = np.random.default_rng(0)
    garbage = [w for _, w in garbage_clips(60, rng, kinds=("noise", "click", "cough"))]
    Xg = np.asarray([model.features(w).vector for w in garbage])
    base = model.estimator
    ens = DigitEnsemble(base.members, base.temperatures, fit_detector(X, Xg))
    p = ens.predict_proba(X)
    np.testing.assert_array_equal(p.argmax(1), base.predict_proba(X).argmax(1))
    np.testing.assert_allclose(p.sum(1), ens.speech_proba(X), rtol=1e-6)
    gated = DigitModel(ens, model.classes)
    # fresh noise/clicks (other seed) score far below real digits
    fresh = [w for _, w in garbage_clips(30, np.random.default_rng(99), kinds=("noise", "click", "cough"))]
    noise_conf = np.median([gated.predict_wave(w).confidence for w in fresh])
    digit_conf = np.median(p.max(1))
    assert noise_conf < 0.5 * digit_conf


def test_shipped_model_loads_without_trainer_torch_or_datasets():
    """The daemon's view: digitd alone (train/torch/datasets blocked) loads and runs the model."""
    import subprocess
    import sys
    from pathlib import Path

    from digitd.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip("no shipped model in models/")
    code = (
        "import sys\n"
        "sys.modules['train'] = None  # the trainer is not importable\n"
        "import importlib.abc\n"
        "class NoTorch(importlib.abc.MetaPathFinder):  # nor torch: the CNN member runs on numpy\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('no torch here')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import numpy as np\n"
        "from digitd.model import load_model\n"
        "m = load_model()\n"
        "x = np.random.default_rng(0).standard_normal(4000) * 0.05\n"
        "p = m.classify(m.features(x, trimmed=True))\n"
        "assert p.label in m.classes and 0.0 <= p.confidence <= 1.0\n"
        "assert 'torch' not in sys.modules and 'datasets' not in sys.modules\n"
        "print(p.confidence)\n"
    )
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) < 0.3  # white noise is not a confident digit
