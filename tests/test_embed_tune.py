"""Fine-tuning the speech embedding (train/embed_tune.py): the torch port computes what the daemon's
numpy network computes, before and after training; a tuning run changes only the layers it may,
learns, and round-trips through its own front end file beside the model, which is checked like
the shipped one; `digitd train --embed-tune` writes and uses that file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitd.embedding import SpeechEmbedding, default_path
from digitd.model import OTHER, ModelError, load_model, save_model

torch = pytest.importorskip("torch")  # the hf extra (installed by `make test`)

ROOT = Path(__file__).resolve().parents[1]
NONDIGIT = ROOT / "tests" / "data" / "nondigit"


def _clips(fsdd_dir, n=4):
    from digitd.audio import load_wav

    names = ["3_theo_0.wav", "7_lucas_1.wav", "0_george_2.wav", "9_jackson_3.wav"][:n]
    return [load_wav(fsdd_dir / f).astype(np.float64) for f in names]


def _torch_windows(net, fe, x):
    from train.embed_head import MEL_FRAMES

    mel = fe.clip_mel(x)[0][:MEL_FRAMES]
    with torch.no_grad():
        return net(torch.from_numpy(mel[None].astype(np.float32)))[0].numpy()


def test_torch_port_equals_the_numpy_network_before_and_after_a_change(fsdd_dir, tmp_path):
    from train.embed_tune import read_arrays, torch_embedding, write_arrays

    arrays = read_arrays(default_path())
    fe = SpeechEmbedding.load()
    net = torch_embedding(arrays).eval()
    for x in _clips(fsdd_dir):
        want = fe.clip_windows(x)
        assert want.shape == (11, 96)
        assert np.allclose(_torch_windows(net, fe, x), want, atol=2e-4)
    # other weights in every layer: the export layout must be the one SpeechEmbedding reads
    rng = np.random.default_rng(0)
    changed = dict(arrays)
    for k in range(20):
        w = arrays[f"emb_conv_{k:02d}_w"]
        changed[f"emb_conv_{k:02d}_w"] = (w * rng.uniform(0.8, 1.2, w.shape)).astype(np.float32)
    write_arrays(changed, tmp_path / "x_embedding.npz")
    fe2 = SpeechEmbedding.load(tmp_path / "x_embedding.npz")
    net2 = torch_embedding(changed).eval()
    x = _clips(fsdd_dir, 1)[0]
    assert not np.allclose(fe2.clip_windows(x), fe.clip_windows(x), atol=1e-3)
    assert np.allclose(_torch_windows(net2, fe2, x), fe2.clip_windows(x), atol=2e-4)


def changed_convolutions(arrays, before) -> list[int]:
    """Which of the embedding's 20 convolutions have weights other than `before`'s."""
    return [k for k in range(20) if not np.array_equal(arrays[f"emb_conv_{k:02d}_w"], before[f"emb_conv_{k:02d}_w"])]


@pytest.fixture(scope="module")
def tuned(small_subset):
    """A small head on real clips, then two epochs of tuning from it."""
    from train.data import Record, load_folder
    from train.embed_head import HeadSpec, fit_head_member
    from train.embed_tune import TuneSpec, tune_on_records

    recs, _ = load_folder(small_subset, check_audio=False)
    recs = [r for r in recs if r.split == "train"]
    negs = [Record(OTHER, p.stem.split("_", 1)[1], 0, "extra", str(p)) for p in sorted(NONDIGIT.glob("*.wav"))]
    classes = [str(d) for d in range(10)]
    hf = fit_head_member(recs + negs, classes, copies=1, jobs=1, folds=0, spec=HeadSpec(channels=16, epochs=10, batch=32))
    t = tune_on_records(recs + negs, classes, hf.head, [], None, spec=TuneSpec(epochs=2, batch=32), seed=0,
                        head_args={"copies": 1, "jobs": 1})
    return recs + negs, classes, hf.head, t


def test_tuning_changes_only_the_upper_layers_and_keeps_the_rest(tuned):
    from train.embed_tune import TuneSpec, read_arrays

    _, _, head, t = tuned
    before = read_arrays(default_path())
    assert set(t.arrays) == set(before)
    assert changed_convolutions(t.arrays, before) == list(range(TuneSpec().freeze, 20))
    for key in before:  # the mel front end, batch norm, layout: untouched
        if not key.startswith("emb_conv_"):
            assert np.array_equal(t.arrays[key], before[key]), key
    assert not np.array_equal(t.head["out"][0], head["out"][0])
    assert np.array_equal(t.head["mu"], head["mu"]) and np.array_equal(t.head["sd"], head["sd"])
    assert 0.0 <= t.train_accuracy <= 1.0


def test_a_tuned_model_round_trips_with_its_own_front_end(tuned, fsdd_dir, tmp_path):
    from digitd import embedhead
    from digitd.model import DigitModel
    from train.embed import fit_embed
    from train.embed_tune import write_arrays
    from train.trainer import Recipe, extract_all, fit, stack

    recs, classes, _, t = tuned
    digits = [r for r in recs if r.label != OTHER]
    X, y, g = stack(extract_all(digits, jobs=1, progress=False), digits, augmented=False)
    res = fit(X, y, g, Recipe(classifier="lr", grid={"clf__C": [0.1]}, jobs=1))
    ef = fit_embed(recs, classes, noisy=0, jobs=1, folds=2)
    front = tmp_path / "m_embedding.npz"
    write_arrays(t.arrays, front)
    ef.member.frontend, ef.member.source = SpeechEmbedding.load(front), front
    ef.member.heads = [t.head]
    path = tmp_path / "m.npz"
    save_model(DigitModel(res.estimator, classes, embed=ef.member), path, {"command": "test"})
    m = load_model(path)
    assert m.embed.source.name == "m_embedding.npz"
    x = _clips(fsdd_dir, 1)[0]
    w = m.embed.frontend.clip_windows(x)
    assert np.allclose(w, SpeechEmbedding.load(front).clip_windows(x))
    assert not np.allclose(w, SpeechEmbedding.load().clip_windows(x), atol=1e-3)  # not the shipped network's
    assert np.allclose(m.embed.utterance_proba(m.features(x)), embedhead.proba(t.head, w[None]), atol=1e-6)
    # the shipped front end put in its place: refused in one line (the SHA-256 differs)
    front.write_bytes(default_path().read_bytes())
    with pytest.raises(ModelError, match="not the front end it was trained with"):
        load_model(path)


def test_digitd_train_embed_tune_writes_and_uses_its_front_end(small_subset, tmp_path):
    from digitd.corpora import available, corpus_clips

    words = available().get("speech-commands-words")
    if words is None:
        pytest.skip("needs speech-commands-words in ../shared (or $DIGITD_SHARED_DIR)")
    negatives = tmp_path / "speech-commands-words"  # 40 of its training-side words
    negatives.mkdir()
    for c in [c for c in corpus_clips(words) if not c.unseen][:40]:
        (negatives / c.path.name).symlink_to(c.path)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "digitd", "train", "--data", str(small_subset), "--classifier", "lr", "--embed",
           "--embed-head", "--set", "train.embed_head_copies=1", "--embed-tune", "1", "--embed-tune-frozen", "4", "--embed-tune-heard", "7", "--embed-head-nets", "2",
           "--negatives", str(negatives), "--jobs", "1", "--out-dir", str(out), "--name", "t"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "fine-tuning the speech embedding" in r.stderr
    card = json.loads((out / "t.json").read_text())
    assert card["embed"]["frontend"] == "t_embedding.npz" and card["embed"]["tune"]["epochs"] == 1
    assert card["embed"]["heads"] == 2 and card["recipe"]["embed_tune"] == 1
    assert card["embed"]["tune"]["frozen_convolutions"] == 4 and card["recipe"]["embed_tune_frozen"] == 4
    assert card["embed"]["tune"]["heard_per_epoch"] == 7 and card["recipe"]["embed_tune_heard"] == 7
    from train.embed_tune import read_arrays

    written = read_arrays(out / "t_embedding.npz")
    assert changed_convolutions(written, read_arrays(default_path())) == list(range(4, 20))  # --embed-tune-frozen 4: the first 4 keep Google's weights
    m = load_model(out / "t.npz")
    assert m.embed.source == out / "t_embedding.npz"
    # its pooled regression (what a user profile adapts) learned the tuned network's vectors
    from digitd.audio import load_wav

    clips = sorted(small_subset.glob("*_george_1[0-2].wav"))
    tuned_rows = np.asarray([m.embed.frontend.pooled(load_wav(p)) for p in clips])
    shipped_rows = np.asarray([SpeechEmbedding.load().pooled(load_wav(p)) for p in clips])
    mean = np.asarray(m.embed.lr["pre"][0]["mean"])
    assert np.linalg.norm(tuned_rows.mean(0) - mean) < np.linalg.norm(shipped_rows.mean(0) - mean)
    assert not (out / "speech_embedding.npz").exists()  # the shipped network is not what it uses


def test_the_spectrograms_tuned_on_are_the_heads_copies(fsdd_dir):
    """head_windows(mels=True) draws the same copies as the head's windows: the network over each
    spectrogram gives that copy's windows (up to the float16 the spectrograms are kept in)."""
    from train.data import Record
    from train.embed_head import MEL_FRAMES, head_windows

    recs = [Record("4", "lucas", 20, "train", str(fsdd_dir / "4_lucas_20.wav")),
            Record("8", "theo", 21, "train", str(fsdd_dir / "8_theo_21.wav"))]
    wins = head_windows(recs, copies=2, jobs=1, low=1)
    mels = head_windows(recs, copies=2, jobs=1, low=1, mels=True)
    fe = SpeechEmbedding.load()
    for w_rec, m_rec in zip(wins, mels):
        assert len(w_rec) == len(m_rec) == 5
        for w, m in zip(w_rec, m_rec):
            assert m.shape == (MEL_FRAMES, 32) and m.dtype == np.float16
            got = fe.embed_mel(m.astype(np.float32))
            assert np.abs(got - w).max() < 0.05 * np.abs(w).max()
            assert np.abs(got - w).max() <= min(np.abs(got - o).max() for o in w_rec)  # its own copy is the nearest
        assert max(np.abs(w_rec[0] - o).max() for o in w_rec) > 0.2 * np.abs(w_rec[0]).max()  # and copies do differ


def test_embed_tune_without_the_head_is_refused_in_one_line(small_subset, tmp_path):
    r = subprocess.run([sys.executable, "-m", "digitd", "train", "--data", str(small_subset), "--embed-tune", "2",
                        "--out-dir", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--embed-tune tunes the speech embedding with its sequence head: it needs --embed --embed-head" in r.stderr
    assert not list(tmp_path.glob("*.npz"))


def test_the_pooled_regression_learns_the_front_end_it_is_given(tuned, tmp_path):
    from train.embed import embed_features, fit_embed
    from train.embed_tune import write_arrays

    recs, classes, _, t = tuned
    front = tmp_path / "m_embedding.npz"
    write_arrays(t.arrays, front)
    fit = fit_embed(recs, classes, noisy=0, jobs=1, folds=0, frontend=front)
    assert fit.member.source == front and len(fit.oof_digit_conf) == 0
    rows = np.asarray([v for r in embed_features(recs, noisy=0, jobs=1, frontend_path=front) for v in r])
    assert np.allclose(fit.member.lr["pre"][0]["mean"], rows.mean(0), atol=1e-4)
