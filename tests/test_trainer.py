"""Trainer pieces on real FSDD audio: augmented copies, the clean-rows SVM member, LOSO splits."""

import numpy as np
import pytest

from train.augment import AugmentSpec
from train.data import load_folder
from train.trainer import Recipe, _clean_mask, _corrupt_mask, extract_all, fit, refit_like, stack


@pytest.fixture(scope="module")
def feats(small_subset):
    recs, _ = load_folder(small_subset)
    recs = [r for r in recs if r.split == "train"]
    spec = AugmentSpec(copies=1, kinds=["noise", "gain"])
    f = extract_all(recs, jobs=1, spec=spec, seed=0, progress=False)
    return recs, f


def test_clean_svm_member_sees_clean_rows_only(feats):
    recs, f = feats
    X, y, g = stack(f, recs, augmented=True)
    clean = _clean_mask(f)
    assert len(X) == 2 * len(recs) and clean.sum() == len(recs)
    recipe = Recipe(classifier="ens", augment=AugmentSpec(copies=1), clean_svm=True, jobs=1)
    corrupt = _corrupt_mask(f)
    assert not corrupt[clean].any() and corrupt[~clean].mean() > 0.5  # noise (p=0.85) or clipping
    res = fit(X, y, g, recipe, clean_mask=clean, corrupt_mask=corrupt)
    members = res.estimator.members
    assert res.clean_only == [False, False, True] and len(members) == 3
    assert [m[-1].n_features_in_ for m in members] == [X.shape[1]] * 3
    assert members[2][-1].shape_fit_[0] == clean.sum()  # fitted on the clean rows
    assert members[1][-1].shape_fit_[0] == len(X)  # the other SVM on everything
    assert "svm_clean" in res.best_params
    again = refit_like(res, X, y, clean, corrupt)
    assert again.members[2][-1].shape_fit_[0] == clean.sum()
    acc = np.mean(res.estimator.predict(X[clean]) == y[clean])
    assert acc > 0.9  # training rows of two speakers
    # the gate hears the difference: the clean member weighs more on clean rows than on noisy copies
    w = res.estimator.member_weights(X)
    assert w[:, :2].min() == 1.0 and 0.0 <= w[:, 2].min() and w[:, 2].max() <= 1.0
    assert w[clean, 2].mean() > w[corrupt, 2].mean() + 0.2


def test_without_augmentation_no_clean_member(feats):
    recs, f = feats
    X, y, g = stack(f, recs, augmented=False)
    res = fit(X, y, g, Recipe(classifier="ens", clean_svm=True, jobs=1), clean_mask=np.ones(len(X), bool))
    assert res.clean_only == [False, False]


def test_loso_joins_a_further_member_per_fold(small_subset):
    """join_fold sees each fold's own training and held-out records and decides the score."""
    from train.trainer import loso

    recs, _ = load_folder(small_subset)
    f = extract_all(recs, jobs=1, progress=False)
    recipe = Recipe(classifier="lr", grid={"clf__C": [0.1]}, jobs=1)
    seen = []

    def join(tr, te, probs):
        spk = {recs[i].speaker for i in te}
        assert len(spk) == 1 and not spk & {recs[i].speaker for i in tr}
        seen.append(spk.pop())
        wrong = np.zeros_like(probs)
        wrong[:, 0] = 1.0  # always "0": right on a tenth of the clips
        return wrong

    res = loso(f, recs, recipe, join_fold=join)
    assert sorted(seen) == ["george", "jackson"]
    assert res["mean"] == pytest.approx(0.1)
    assert loso(f, recs, recipe)["mean"] > 0.3  # the members alone do better than that
