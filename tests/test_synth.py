"""espeak-ng helpers: unseen synthetic voices (skipped when espeak-ng is not installed)."""

import shutil

import numpy as np
import pytest

from digitd.audio import read_wav
from train.synth import DETECTOR_VOICES, DETECTOR_WORDS, DIGIT_WORDS, NONDIGIT_WORDS, VOICES, espeak_digits

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def test_espeak_digits_are_8k_labelled_and_distinct(tmp_path):
    recs = espeak_digits(tmp_path, VOICES[:2])
    assert len(recs) == 20
    assert [r.label for r in recs[:10]] == [str(d) for d in range(10)]
    rate, x = read_wav(recs[3].path)
    assert rate == 8000 and x.dtype == np.int16 and 0.2 * 8000 < len(x) < 2 * 8000
    a, b = read_wav(recs[7].path)[1], read_wav(recs[17].path)[1]  # same word, two voices
    assert recs[7].label == recs[17].label and not np.array_equal(a[: min(len(a), len(b))], b[: min(len(a), len(b))])


def test_evaluation_and_detector_material_do_not_overlap():
    assert not set(VOICES) & set(DETECTOR_VOICES)
    assert not set(NONDIGIT_WORDS) & set(DETECTOR_WORDS)
    assert not set(DIGIT_WORDS) & set(DETECTOR_WORDS)
    assert not {"en-us+m2", "en+f4"} & set(DETECTOR_VOICES)  # the voices of tests/data/nondigit


def test_training_voices_are_disjoint_from_every_evaluation_voice():
    from train.synth import TRAIN_VARIANTS, variant_of

    evaluated = {variant_of(v) for v in VOICES} | {"m2", "f4"}  # + the voices of tests/data/nondigit
    detector = {variant_of(v) for v in DETECTOR_VOICES}
    assert not set(TRAIN_VARIANTS) & evaluated
    assert not set(TRAIN_VARIANTS) & detector
    assert len(set(TRAIN_VARIANTS)) == len(TRAIN_VARIANTS) >= 50


def test_training_digits_are_labelled_synth_records(tmp_path, monkeypatch):
    import train.synth as synth

    monkeypatch.setattr(synth, "TRAIN_VARIANTS", synth.TRAIN_VARIANTS[:2])
    recs = synth.training_digits(tmp_path, seed=0, jobs=1)
    assert len(recs) == 2 * 2 * 10 and {r.split for r in recs} == {"synth"}
    assert len({r.speaker for r in recs}) == 4  # variant x accent x rate x pitch
    assert sorted({r.label for r in recs}) == [str(d) for d in range(10)]
    rate, x = read_wav(recs[0].path)
    assert rate == 8000 and len(x) > 0.2 * 8000
    again = synth.training_digits(tmp_path, seed=0, jobs=1)  # cached, same voices
    assert [r.path for r in again] == [r.path for r in recs]
