"""The convolutional member: numpy forward == torch, its input view, that it learns real
digits, that a trained bundle round-trips, and that a damaged member is refused."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitd.audio import load_wav
from digitd.cnn import forward, n_parameters, proba
from digitd.features import DEFAULT_PARAMS, logmel
from digitd.model import CnnMember, DigitModel, ModelError, load_model, save_model, sha256_file

ROOT = Path(__file__).resolve().parents[1]


def _random_net(seed=0):
    torch = pytest.importorskip("torch")
    from train.cnn import CnnSpec, _torch_net

    torch.manual_seed(seed)
    net = _torch_net(10, CnnSpec(), DEFAULT_PARAMS.mel_bands)
    for bn in [*net.bns, net.bnp]:  # non-trivial running statistics, so folding is really tested
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def test_numpy_forward_equals_torch():
    from train.cnn import export, torch_logits

    net = _random_net()
    weights = export(net, DEFAULT_PARAMS.mel_floor)
    for frames in (1, 3, 4, 37, 101):
        s = np.random.default_rng(frames).uniform(DEFAULT_PARAMS.mel_floor, 0, (frames, DEFAULT_PARAMS.mel_bands))
        want = torch_logits(net, s.astype(np.float32), DEFAULT_PARAMS.mel_floor, 4)
        np.testing.assert_allclose(forward(weights, s), want, atol=1e-4)
    assert n_parameters(weights) == sum(p.numel() for p in net.parameters()) - 2 * sum(bn.num_features for bn in [*net.bns, net.bnp])


def test_logmel_is_level_invariant_and_floored(fsdd):
    x = load_wav(fsdd / "3_theo_7.wav")
    a, b = logmel(x * 2.0), logmel(x * 0.05)
    assert a.shape[1] == DEFAULT_PARAMS.mel_bands and a.dtype == np.float32
    assert a.max() == 0.0 and a.min() >= DEFAULT_PARAMS.mel_floor
    np.testing.assert_allclose(a, b, atol=0.05)  # only the absolute 1e-7 dither differs
    other = logmel(load_wav(fsdd / "3_jackson_7.wav"))
    assert np.abs(a[: len(other)] - other[: len(a)]).mean() > 0.3  # another voice is not the same picture
    with pytest.raises(ValueError):
        logmel(np.zeros(0))


def test_cnn_learns_real_digits(small_subset):
    """Trained on takes 5-12 of two speakers (with noisy copies), it names most of takes 0-1."""
    pytest.importorskip("torch")
    from train.augment import AugmentSpec
    from train.cnn import CnnSpec, clip_spectrograms, fit_cnn

    files = sorted(small_subset.glob("*.wav"))
    train = [p for p in files if int(p.stem.split("_")[2]) >= 5]
    test = [p for p in files if int(p.stem.split("_")[2]) < 5]
    specs = [clip_spectrograms(load_wav(p), AugmentSpec(copies=2), i, None) for i, p in enumerate(train)]
    weights = fit_cnn(specs, [int(p.name[0]) for p in train], 10, CnnSpec(epochs=25), seed=0)
    pred = [int(np.argmax(forward(weights, logmel(load_wav(p))))) for p in test]
    acc = np.mean(np.asarray(pred) == [int(p.name[0]) for p in test])
    assert acc > 0.6, acc  # chance is 0.1


def test_combine_is_silent_on_clean_audio_and_heard_in_noise():
    member = CnnMember([], gain=4.0, base=0.0)
    parts = {"digit": np.array([[0.8, 0.2], [0.8, 0.2]]), "weight": np.array([2.0, 2.0]),
             "speech": np.ones(2), "clean": np.array([1.0, 0.0])}
    cnn = np.array([[0.0, 1.0], [0.0, 1.0]])
    p = member.combine(parts, cnn)
    np.testing.assert_allclose(p[0], [0.8, 0.2])  # clean: the pooled members alone
    np.testing.assert_allclose(p[1], (2 * np.array([0.8, 0.2]) + 4 * np.array([0.0, 1.0])) / 6)


@pytest.fixture(scope="module")
def cnn_model(small_subset, tmp_path_factory):
    pytest.importorskip("torch")
    from digitd.cli import main

    out = tmp_path_factory.mktemp("cnn_model")
    rc = main(["train", "--data", str(small_subset), "--classifier", "lr", "--aug", "1", "--cnn", "--cnn-epochs", "3",
               "--cnn-copies", "1", "--out-dir", str(out), "--name", "c", "--jobs", "1"])
    assert rc == 0
    return out / "c.npz"


def test_trained_cnn_bundle_round_trips(cnn_model, small_subset, capsys):
    from digitd.cli import main

    card = json.loads(cnn_model.with_suffix(".json").read_text())
    assert card["recipe"]["cnn"] and card["cnn"]["gain"] == 8.0 and card["cnn"]["base"] == 2.0 and card["cnn"]["parameters"] > 50_000
    m = load_model(cnn_model)
    assert m.cnn is not None and card["cnn"]["nets"] == len(m.cnn.nets) == 2  # config.toml's train.cnn_nets
    assert sum(n_parameters(net) for net in m.cnn.nets) == card["cnn"]["parameters"]
    clip = small_subset / "4_george_0.wav"
    f = m.features(load_wav(clip))
    assert f.spec is not None and f.spec.shape[1] == DEFAULT_PARAMS.mel_bands
    each = [proba(net, f.spec) for net in m.cnn.nets]
    assert not np.allclose(each[0], each[1])  # two seeds, two nets
    np.testing.assert_allclose(m.cnn.proba(f.spec), (each[0] + each[1]) / 2)
    joint, pooled = m.probabilities(f), m.scores(f.vector)[0]
    assert not np.allclose(joint, pooled)  # no gate in this recipe: the CNN always has a say
    capsys.readouterr()
    assert main(["predict", "--model", str(cnn_model), str(clip)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["confidence"] == pytest.approx(float(joint.max()), abs=1e-4)


def test_damaged_cnn_member_is_refused(cnn_model, tmp_path):
    m = load_model(cnn_model)
    w = dict(m.cnn.nets[0])
    fw, fb = w["fc"]
    w["fc"] = (fw[:7], fb[:7])  # 7 scores for 10 classes
    path = tmp_path / "bad.npz"
    save_model(DigitModel(None, m.classes, m.params, runtime=m.runtime, cnn=CnnMember([w], 4.0)), path, {"command": "test"})
    with pytest.raises(ModelError, match="convolutional member gives 7 scores"):
        load_model(path)
    save_model(DigitModel(None, m.classes, m.params, runtime=m.runtime, cnn=CnnMember([w, m.cnn.nets[1]], 4.0)), path, {"command": "test"})
    with pytest.raises(ModelError, match="nets disagree on the number of classes"):
        load_model(path)
    w["proj"] = (w["proj"][0][:, :5], w["proj"][1])  # does not fit the conv output
    save_model(DigitModel(None, m.classes, m.params, runtime=m.runtime, cnn=CnnMember([w], 4.0)), path, {"command": "test"})
    with pytest.raises(ModelError, match="bad convolutional member"):
        load_model(path)


def test_single_net_pickle_bundle_of_earlier_models_converts(cnn_model, small_subset, tmp_path):
    """Models before v5 stored one net under "weights" in a pickle bundle: a trusted one converts."""
    import joblib

    from digitd.model import PICKLE_FORMAT, convert_pickle_model, read_bundle

    m = load_model(cnn_model)
    bundle = read_bundle(cnn_model) | {"format": PICKLE_FORMAT, "estimator_blob": None}
    bundle["cnn"] = {"weights": m.cnn.nets[0], "gain": m.cnn.gain, "base": m.cnn.base}
    old = tmp_path / "old.joblib"
    joblib.dump(bundle, old)
    card = json.loads(cnn_model.with_suffix(".json").read_text())
    old.with_suffix(".json").write_text(json.dumps(card | {"sha256": sha256_file(old)}))
    with pytest.raises(ModelError, match="convert-model"):
        load_model(old)
    o = load_model(convert_pickle_model(old, tmp_path / "new.npz"))
    assert len(o.cnn.nets) == 1
    spec = o.features(load_wav(small_subset / "7_jackson_1.wav")).spec
    np.testing.assert_allclose(o.cnn.proba(spec), proba(m.cnn.nets[0], spec))


def test_cnn_without_torch_is_one_line_error(small_subset, tmp_path):
    code = ("import sys, importlib.abc\n"
            "class NoTorch(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('no torch here')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from digitd.cli import main\n"
            f"sys.exit(main(['train', '--data', {str(small_subset)!r}, '--cnn', '--out-dir', {str(tmp_path)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "--cnn needs torch" in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.npz"))
