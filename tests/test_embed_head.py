"""The embedding member's sequence head: numpy scoring equals torch, it learns what pooling
cannot (the order of the windows), a real fit on real clips round-trips through the model file
and is what scores the member, and a damaged head is refused in one line."""

from pathlib import Path

import numpy as np
import pytest

from digitd import embedhead
from digitd.model import OTHER, ModelError, load_model, save_model

torch = pytest.importorskip("torch")  # the hf extra (installed by `make test`)

ROOT = Path(__file__).resolve().parents[1]
NONDIGIT = ROOT / "tests" / "data" / "nondigit"


def test_numpy_head_equals_torch():
    from train.embed_head import HeadSpec, _torch_head, export

    torch.manual_seed(0)
    net = _torch_head(11, HeadSpec(channels=16), 96).eval()
    rng = np.random.default_rng(0)
    mu, sd = rng.standard_normal(96).astype(np.float32), rng.uniform(0.5, 2, 96).astype(np.float32)
    head = export(net, mu, sd)
    w = rng.standard_normal((4, 11, 96)).astype(np.float32) * sd + mu
    with torch.no_grad():
        want = torch.softmax(net(torch.tensor((w - mu) / sd)), 1).numpy()
    assert np.allclose(embedhead.proba(head, w), want, atol=1e-5)
    assert np.allclose(embedhead.proba(head, w[0]), want[:1], atol=1e-5)  # one utterance (T, 96)
    assert embedhead.n_parameters(head) == sum(p.numel() for p in net.parameters())


def test_head_learns_the_order_that_pooling_loses():
    """Class 0: feature 0 rises in one window and feature 1 in the next; class 1: the other way
    round, anywhere but the middle. Mean, max and the middle window are alike for both, so only
    the order of neighbouring windows (what the head's convolutions see) tells them apart."""
    from sklearn.linear_model import LogisticRegression

    from digitd.embedding import pool
    from train.embed_head import HeadSpec, fit_head

    rng = np.random.default_rng(1)

    def clips(n):
        W = rng.standard_normal((n, 11, 96)).astype(np.float32) * 0.3
        y = rng.integers(0, 2, n)
        for i, c in enumerate(y):
            t = int(rng.choice([1, 2, 3, 6, 7, 8]))
            a, b = (t, t + 1) if c == 0 else (t + 1, t)
            W[i, a, 0] += 3.0
            W[i, b, 1] += 3.0
        return W, y

    W, y = clips(600)
    Wt, yt = clips(200)
    head = fit_head(W, y, 2, HeadSpec(channels=16, epochs=30, batch=64), seed=0)
    acc_head = np.mean(embedhead.proba(head, Wt).argmax(1) == yt)
    lr = LogisticRegression(max_iter=2000).fit(np.stack([pool(w) for w in W]), y)
    acc_pooled = lr.score(np.stack([pool(w) for w in Wt]), yt)
    assert acc_head > 0.95 and acc_pooled < 0.75, (acc_head, acc_pooled)


@pytest.fixture(scope="module")
def head_model(small_subset, tmp_path_factory):
    """A small model with the embedding member and two sequence heads (seeds 0 and 1) fitted on real clips."""
    from digitd.model import DigitModel
    from train.data import Record, load_folder
    from train.embed import fit_embed
    from train.embed_head import HeadSpec, fit_head_member
    from train.trainer import Recipe, extract_all, fit, stack

    recs, _ = load_folder(small_subset, check_audio=False)
    recs = [r for r in recs if r.split == "train"]
    X, y, g = stack(extract_all(recs, jobs=1, progress=False), recs, augmented=False)
    res = fit(X, y, g, Recipe(classifier="lr", grid={"clf__C": [0.1]}, jobs=1))
    classes = [str(c) for c in res.estimator.classes_]
    negs = [Record(OTHER, p.stem.split("_", 1)[1], 0, "extra", str(p)) for p in sorted(NONDIGIT.glob("*.wav"))]
    ef = fit_embed(recs + negs, classes, noisy=0, jobs=1, folds=2)
    hf = fit_head_member(recs + negs, classes, copies=1, jobs=1, folds=2, spec=HeadSpec(channels=16, epochs=10, batch=32))
    hf1 = fit_head_member(recs + negs, classes, copies=1, jobs=1, folds=0, seed=1, spec=HeadSpec(channels=16, epochs=10, batch=32))
    ef.member.heads = [hf.head, hf1.head]
    model = DigitModel(res.estimator, classes, embed=ef.member)
    path = tmp_path_factory.mktemp("head") / "m.npz"
    save_model(model, path, {"command": "test"})
    return model, path, hf


def test_fitted_head_round_trips_and_scores_the_member(head_model, fsdd_dir):
    import json

    from digitd.audio import load_wav

    model, path, hf = head_model
    assert len(hf.oof_digit_conf) and len(hf.oof_other_conf) and hf.n_rows > 0
    loaded = load_model(path)
    assert len(loaded.embed.heads) == 2
    x = load_wav(fsdd_dir / "3_theo_0.wav")
    f = loaded.features(x)
    assert f.embed_windows is not None and f.embed_windows.shape == (11, 96)
    assert np.allclose(loaded.probabilities(f), model.probabilities(model.features(x)), atol=1e-6)
    pe = loaded.embed.utterance_proba(f)
    one, two = (embedhead.proba(h, f.embed_windows) for h in loaded.embed.heads)
    assert np.allclose(pe, (one + two) / 2)  # the heads' average: neither head alone
    assert not np.allclose(one, two) and not np.allclose(pe, one)
    assert not np.allclose(pe, loaded.embed.proba(f.embed))  # the heads, not the pooled regression
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["embed"]["heads"] == 2
    assert card["embed"]["head_parameters"] == sum(embedhead.n_parameters(h) for h in loaded.embed.heads)


def test_a_model_with_one_head_stored_the_old_way_loads(head_model, tmp_path, fsdd_dir):
    """Models before v10 store one head under "head": they load as a member with that one head."""
    import json
    import shutil

    from digitd.audio import load_wav
    from digitd.model import read_bundle, sha256_file, write_bundle, write_card

    _, path, _ = head_model
    bundle = read_bundle(path)
    heads = bundle["embed"].pop("heads")
    bundle["embed"]["head"] = heads[0]
    old = tmp_path / "old.npz"
    write_bundle(bundle, old)
    shutil.copyfile(path.parent / bundle["embed"]["frontend"], tmp_path / bundle["embed"]["frontend"])
    card = json.loads(path.with_suffix(".json").read_text())
    card |= {"sha256": sha256_file(old), "size_bytes": old.stat().st_size}
    write_card(old, card)
    loaded = load_model(old)
    assert len(loaded.embed.heads) == 1
    f = loaded.features(load_wav(fsdd_dir / "3_theo_0.wav"))
    assert np.allclose(loaded.embed.utterance_proba(f), embedhead.proba(loaded.embed.heads[0], f.embed_windows))


def test_damaged_head_is_refused_in_one_line(head_model, tmp_path):
    import dataclasses

    from digitd.model import DigitModel

    _, path, _ = head_model
    m = load_model(path)
    head = dict(m.embed.heads[0])
    w, b = head["out"]
    head["out"] = (w[:5], b[:5])  # 5 scores for 11 classes
    bad = tmp_path / "bad.npz"
    save_model(DigitModel(None, m.classes, m.params, runtime=m.runtime, embed=dataclasses.replace(m.embed, heads=[head])),
               bad, {"command": "test"})
    with pytest.raises(ModelError) as e:
        load_model(bad)
    assert "bad embedding member" in str(e.value) and "5 scores" in str(e.value) and "\n" not in str(e.value)


def test_card_keeps_the_trainers_embedding_entries(head_model, tmp_path):
    """The trainer's out-of-fold numbers for the member sit beside what save_model adds."""
    import json

    model, _, _ = head_model
    out = tmp_path / "c.npz"
    save_model(model, out, {"command": "test", "embed": {"oof_other_rejected": 0.9, "weight": "stale"}})
    card = json.loads(out.with_suffix(".json").read_text())["embed"]
    assert card["oof_other_rejected"] == 0.9 and card["weight"] == model.embed.weight
    assert card["head_parameters"] == sum(embedhead.n_parameters(h) for h in model.embed.heads)


def test_reverberant_head_copies_are_added_after_the_others(fsdd_dir):
    """embed_head_reverb: N more versions per clip, heard through a room (longer, so their windows
    differ from every dry copy), drawn from their own stream: the dry copies stay as they were."""
    from digitd.embedding import SpeechEmbedding
    from train.data import Record
    from train.embed_head import _Banks, _versions

    rec = Record("4", "lucas", 20, "train", str(fsdd_dir / "4_lucas_20.wav"))
    fe = SpeechEmbedding.load()
    banks = _Banks(np.zeros(0), [])  # white / pink only: no banks needed
    dry = _versions(rec, fe.clip_windows, banks, copies=2, seed=0)
    wet = _versions(rec, fe.clip_windows, banks, copies=2, seed=0, reverb=2)
    assert len(dry) == 4 and len(wet) == 6
    for a, b in zip(dry, wet[:4]):
        np.testing.assert_array_equal(a, b)
    for w in wet[4:]:
        assert w.shape == dry[0].shape and all(not np.allclose(w, d) for d in dry)


def test_speed_changed_head_copies_come_after_the_reverberant_ones(fsdd_dir):
    """embed_head_speed: N more versions per clip played faster or slower, from their own stream:
    the dry and reverberant copies stay as they were; a narrow range far from 1 moves every window."""
    from digitd.embedding import SpeechEmbedding
    from train.data import Record
    from train.embed_head import _Banks, _versions

    rec = Record("4", "lucas", 20, "train", str(fsdd_dir / "4_lucas_20.wav"))
    fe = SpeechEmbedding.load()
    banks = _Banks(np.zeros(0), [])
    wet = _versions(rec, fe.clip_windows, banks, copies=2, seed=0, reverb=1)
    fast = _versions(rec, fe.clip_windows, banks, copies=2, seed=0, reverb=1, speed=2, speed_range=(1.3, 1.35))
    assert len(wet) == 5 and len(fast) == 7
    for a, b in zip(wet, fast[:5]):
        np.testing.assert_array_equal(a, b)
    for w in fast[5:]:
        assert w.shape == wet[0].shape and all(not np.allclose(w, d) for d in wet)


def test_low_snr_head_copies_come_last_and_are_noisier(fsdd_dir):
    """embed_head_low: N more versions per clip under noise as loud as the word, from their own
    stream: every other copy stays as it was, and the low copies are always noisy, at the range's
    SNR (white or pink here: the banks are empty), so far from the dry clip's windows."""
    from digitd.embedding import SpeechEmbedding
    from train.data import Record
    from train.embed_head import _Banks, _versions

    path = fsdd_dir / "4_lucas_20.wav"
    rec = Record("4", "lucas", 20, "train", str(path))
    fe = SpeechEmbedding.load()
    banks = _Banks(np.zeros(0), [])
    base = _versions(rec, fe.clip_windows, banks, copies=2, seed=0, reverb=1, speed=1)
    low = _versions(rec, fe.clip_windows, banks, copies=2, seed=0, reverb=1, speed=1, low=3, low_snr=(-6.0, -5.0))
    assert len(base) == 6 and len(low) == 9
    for a, b in zip(base, low[:6]):
        np.testing.assert_array_equal(a, b)
    dry = base[0]
    mild = _versions(rec, fe.clip_windows, banks, copies=0, seed=0, low=3, low_snr=(30.0, 31.0))[2:]
    far = [float(np.linalg.norm(w - dry)) for w in low[6:]]
    near = [float(np.linalg.norm(w - dry)) for w in mild]
    assert min(far) > max(near)  # -6 dB moves the embedding more than 30 dB does, copy by copy


def test_low_snr_copies_draw_their_noise_from_low_kinds(fsdd_dir):
    """embed_head_low_kinds: the low copies' noise comes from that list alone, the other copies
    never change, and the default list still mixes every kind (the default's arrays were checked
    once against the module before the knob: identical). Seen as audio at -30 dB, a copy is its
    noise: white is flat across the spectrum, babble (talkers) is not."""
    from scipy.signal import welch

    from train.augment import make_babble
    from train.data import Record
    from train.embed_head import KINDS, _Banks, _versions

    rec = Record("4", "lucas", 20, "train", str(fsdd_dir / "4_lucas_20.wav"))
    talk = [Record(c, "x", 0, "train", str(fsdd_dir / f)).load().astype(np.float64)
            for c, f in (("4", "4_lucas_20.wav"), ("9", "9_jackson_20.wav"), ("2", "2_theo_20.wav"))]
    banks = _Banks(np.zeros(0), [make_babble(talk, 10.0, np.random.default_rng(0), talkers=3)])

    def copies(kinds=KINDS, low=4):
        return _versions(rec, lambda a: a, banks, copies=2, seed=0, low=low, low_snr=(-30.0, -29.0), low_kinds=kinds)

    def flatness(a):
        p = welch(a, fs=8000, nperseg=256)[1][2:-2]
        return float(np.exp(np.mean(np.log(p))) / np.mean(p))

    default, white, babble = copies(), copies(("white",)), copies(("babble",))
    for a, b, c in zip(default[:4], white[:4], babble[:4]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert min(flatness(w) for w in white[4:]) > 0.5 > max(flatness(b) for b in babble[4:])
    mixed = [flatness(a) for a in copies(low=12)[4:]]  # no recorded bank here: babble, white and pink
    assert max(mixed) > 0.9 and min(mixed) < 0.2


def test_heard_rows_are_trained_on_and_never_validated_on(small_subset):
    """train/heard.py's utterances join the head's training rows once each; the out-of-fold
    confidences (the reject threshold) still come from the clips as recorded only."""
    from digitd import embedhead
    from digitd.embedding import SpeechEmbedding
    from train.data import Record, load_folder
    from train.embed_head import HeadSpec, fit_head_member
    from train.heard import Heard

    recs, _ = load_folder(small_subset, check_audio=False)
    recs = [r for r in recs if r.split == "train"]
    negs = [Record(OTHER, p.stem.split("_", 1)[1], 0, "extra", str(p)) for p in sorted(NONDIGIT.glob("*.wav"))]
    rng = np.random.default_rng(0)
    heard = [Heard((r.load() + 0.05 * rng.standard_normal(len(r.load()))).astype(np.float32), False, r.label, r.speaker, "white_5db")
             for r in recs[:24]]
    spec = HeadSpec(channels=16, epochs=5, batch=32)
    plain = fit_head_member(recs + negs, [str(d) for d in range(10)], copies=0, jobs=1, folds=2, spec=spec)
    more = fit_head_member(recs + negs, [str(d) for d in range(10)], copies=0, jobs=1, folds=2, spec=spec, heard=heard)
    assert more.n_rows == plain.n_rows + len(heard)
    assert len(more.oof_digit_conf) == len(plain.oof_digit_conf) and len(more.oof_other_conf) == len(plain.oof_other_conf)
    w = SpeechEmbedding.load().clip_windows(heard[0].audio.astype(np.float64))[None]
    assert not np.allclose(embedhead.proba(plain.head, w), embedhead.proba(more.head, w))
    # the trainer frees their audio once the windows are computed: the same head from labels + windows
    from train.embed_head import heard_windows

    light = [h.without_audio() for h in heard]
    same = fit_head_member(recs + negs, [str(d) for d in range(10)], copies=0, jobs=1, folds=2, spec=spec, heard=light,
                           heard_w=heard_windows(heard, 1))
    np.testing.assert_allclose(embedhead.proba(same.head, w), embedhead.proba(more.head, w), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="windows"):
        fit_head_member(recs + negs, [str(d) for d in range(10)], copies=0, jobs=1, folds=2, spec=spec, heard=light)


def test_microphone_copies_are_coloured_from_their_own_stream(fsdd_dir):
    """mic (train.mic_copies): with 0 every copy is drawn exactly as before; with 1 the clip as
    recorded and trimmed stay as they are and every augmented copy is the same copy heard through
    a microphone: the same length, still the word, but a different spectrum."""
    from train.data import Record
    from train.embed_head import _Banks, _versions

    rec = Record("4", "lucas", 20, "train", str(fsdd_dir / "4_lucas_20.wav"))
    banks = _Banks(np.zeros(0), [])
    plain = _versions(rec, lambda a: a, banks, copies=3, seed=0, reverb=1, low=1)
    off = _versions(rec, lambda a: a, banks, copies=3, seed=0, reverb=1, low=1, mic=0.0)
    mics = _versions(rec, lambda a: a, banks, copies=3, seed=0, reverb=1, low=1, mic=1.0)
    for a, b in zip(plain, off):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(plain[:2], mics[:2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(plain[2:], mics[2:]):
        assert len(a) == len(b) and not np.allclose(a, b)
        assert np.corrcoef(a, b)[0, 1] > 0.3  # the same draw of word, noise and gain, coloured
