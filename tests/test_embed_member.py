"""The speech-embedding member: how it joins the others, that it survives save/load, and that
it refuses a front end it was not trained with."""

import json
from pathlib import Path

import numpy as np
import pytest

from digitd.model import OTHER, EmbedMember, ModelError, card_path, load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
NONDIGIT = ROOT / "tests" / "data" / "nondigit"


def _member(weight=0.5, power=1.0):
    from digitd.embedding import SpeechEmbedding

    return EmbedMember(SpeechEmbedding.load(), {"kind": "lr", "coef": np.zeros((3, 1)), "intercept": np.zeros(3)},
                       ["0", "1", OTHER], weight, power)


def test_combine_weights_and_other():
    base = np.array([[0.9, 0.1]])
    m = _member(weight=0.5)
    np.testing.assert_allclose(m.combine(base, np.array([[0.0, 1.0, 0.0]])), [[0.45, 0.55]])
    # all of P(other): nothing left for any digit, whatever the other members say
    np.testing.assert_allclose(m.combine(base, np.array([[0.0, 0.0, 1.0]])), [[0.0, 0.0]], atol=1e-12)
    # weight 0: the other members alone, their detector's P(speech) (their total, 0.5) kept,
    # scaled by 1 - P(other)
    np.testing.assert_allclose(_member(weight=0.0).combine(base * 0.5, np.array([[0.1, 0.1, 0.8]])), [[0.09, 0.01]])
    # the detector's doubt stays in the product whatever the embedding says
    np.testing.assert_allclose(m.combine(base * 0.2, np.array([[0.0, 1.0, 0.0]])), [[0.09, 0.11]])


@pytest.fixture(scope="module")
def embed_model(small_subset, tmp_path_factory):
    from train.data import Record, load_folder
    from train.embed import fit_embed
    from train.trainer import Recipe, extract_all, fit, stack
    from digitd.model import DigitModel

    recs, _ = load_folder(small_subset, check_audio=False)
    recs = [r for r in recs if r.split == "train"]
    feats = extract_all(recs, jobs=1, progress=False)
    X, y, g = stack(feats, recs, augmented=False)
    res = fit(X, y, g, Recipe(classifier="lr", grid={"clf__C": [0.1]}, jobs=1))
    classes = [str(c) for c in res.estimator.classes_]
    negs = [Record(OTHER, p.stem.split("_", 1)[1], 0, "extra", str(p)) for p in sorted(NONDIGIT.glob("*.wav"))]
    ef = fit_embed(recs + negs, classes, noisy=0, jobs=1, folds=2)
    model = DigitModel(res.estimator, classes, embed=ef.member)
    path = tmp_path_factory.mktemp("embed") / "m.npz"
    save_model(model, path, {"command": "test"})
    return model, path, ef


def test_round_trip_and_other_class(embed_model, fsdd_dir):
    from digitd.audio import load_wav

    model, path, ef = embed_model
    loaded = load_model(path)
    assert loaded.embed is not None and loaded.embed.classes == model.classes + [OTHER]
    assert (path.parent / "speech_embedding.npz").is_file()  # the front end travels with the model
    digit = load_wav(fsdd_dir / "3_george_0.wav")  # a test take: never trained on
    word = load_wav(NONDIGIT / "hello_en-f4.wav")
    a, b = model.predict_wave(digit), loaded.predict_wave(digit)
    assert a.label == b.label == "3"
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
    assert loaded.predict_wave(word).confidence < b.confidence  # a trained-on non-digit word: mostly "other"
    assert len(ef.oof_digit_conf) and len(ef.oof_other_conf)


def test_front_end_other_than_trained_refused(embed_model, tmp_path):
    import shutil

    _, path, _ = embed_model
    for name in ("m.npz", "m.json", "speech_embedding.npz"):
        shutil.copy(path.parent / name, tmp_path / name)
    card = json.loads(card_path(tmp_path / "m.npz").read_text())
    assert card["embed"]["frontend_sha256"]
    with np.load(tmp_path / "speech_embedding.npz") as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k, v in arrays.items() if v.dtype == np.float32 and v.size > 1000)
    arrays[key] = arrays[key] * 1.01
    np.savez(tmp_path / "speech_embedding.npz", **arrays)
    with pytest.raises(ModelError, match="front end"):
        load_model(tmp_path / "m.npz")
    (tmp_path / "speech_embedding.npz").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path / "m.npz")
