"""The one speaker split: by the id alone, the same person on the same side in every folder."""

from pathlib import Path

import pytest

from digitd.corpora import CORPORA, available, corpus_clips, is_dev, is_unseen, side_clips, speaker_fraction, split_clips
from train.data import Record, split_extra


@pytest.fixture(scope="module")
def root() -> Path:
    from digitd.corpora import shared_dir

    r = shared_dir()
    if not available(r):
        pytest.skip(f"no extra corpora under {r}")
    return r


def test_rule_depends_on_the_id_only(tmp_path):
    assert all(0.0 <= speaker_fraction(s) < 1.0 for s in ("sc-004ae714", "am-01", "x"))
    # pinned: a SHA-256 of the id, so a person lands on the same side on every machine and Python
    assert speaker_fraction("sc-004ae714") == pytest.approx(0.2300023127, abs=1e-9)
    assert speaker_fraction("am-01") == pytest.approx(0.7093896815, abs=1e-9)
    assert (is_unseen("sc-004ae714"), is_unseen("am-01"), is_unseen("am-02")) == (True, False, True)
    assert is_dev("am-26") and not is_dev("am-01") and not is_unseen("am-26")
    # a folder's other contents never move a speaker
    for n, names in enumerate((["1_sc-aa_0.wav"], ["1_sc-aa_0.wav", "2_sc-bb_0.wav", "3_sc-cc_1.wav"])):
        d = tmp_path / f"f{n}"
        d.mkdir()
        for name in names:
            (d / name).write_bytes(b"")
        assert [c.unseen for c in corpus_clips(d, "digit") if c.speaker == "sc-aa"] == [is_unseen("sc-aa")]


def test_trainer_holds_out_the_same_speakers():
    recs = split_extra([Record("1", f"sc-{i:08x}", 0, "extra") for i in range(200)])
    assert [r.split == "extra-test" for r in recs] == [is_unseen(r.speaker) for r in recs]


def test_dev_slice_is_training_side_and_held_out_only_when_asked(root):
    """The dev slice (hash 0.3-0.45) is part of the training side; `hold_out_dev` takes it out
    of the extra corpora and the negatives, and nothing else."""
    from train.embed import negative_records

    speakers = [f"sc-{i:08x}" for i in range(400)]
    assert not any(is_dev(s) and is_unseen(s) for s in speakers)
    assert 0.1 < sum(map(is_dev, speakers)) / len(speakers) < 0.2
    recs = split_extra([Record("1", s, 0, "extra") for s in speakers], hold_out_dev=True)
    assert [r.split for r in recs] == ["extra-test" if is_unseen(s) else "extra-dev" if is_dev(s) else "extra" for s in speakers]
    assert "extra-dev" not in {r.split for r in split_extra([Record("1", s, 0, "extra") for s in speakers])}
    dev = side_clips(root, "dev")
    train = side_clips(root, "train")
    assert dev and {c.path for c in dev} < {c.path for c in train}
    folders = [str(p) for n, p in available(root).items() if CORPORA[n] != "digit"]
    every, held = negative_records(folders), negative_records(folders, hold_out_dev=True)
    assert {r.path for r in every} - {r.path for r in held} == {str(c.path) for c in dev if c.kind != "digit"}


def test_real_folders(root):
    clips = {name: corpus_clips(path, CORPORA[name]) for name, path in available(root).items()}
    digits = clips.get("speech-commands-digits", [])
    words = clips.get("speech-commands-words", [])
    assert all(c.label.isdigit() and c.kind == "digit" for c in digits)
    assert all(not c.label.isdigit() and c.kind == "word" for c in words)
    # the same person has one id in the digits and words folders, so one side of the split
    shared = {c.speaker for c in digits} & {c.speaker for c in words}
    assert shared, "the Speech Commands folders share speaker ids"
    speakers = {c.speaker for cl in clips.values() for c in cl}
    share = sum(map(is_unseen, speakers)) / len(speakers)
    assert 0.25 < share < 0.35
    unseen = split_clips(root, unseen=True)
    seen = split_clips(root, unseen=False)
    assert not {c.speaker for c in unseen} & {c.speaker for c in seen}
    assert len(unseen) + len(seen) == sum(map(len, clips.values()))
