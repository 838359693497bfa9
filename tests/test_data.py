"""Data loaders: the local FSDD folder and the Hugging Face path (on local files)."""

from collections import Counter

import numpy as np
import pytest

from digitd.audio import load_wav, write_wav
from train.data import DataError, fingerprint, load_folder


def test_local_folder_labels_speakers_split(fsdd_dir):
    recs, bad = load_folder(fsdd_dir, check_audio=False)
    assert bad == []
    assert len(recs) == 3000
    assert Counter(r.split for r in recs) == {"train": 2700, "test": 300}
    assert Counter(r.label for r in recs) == {str(d): 300 for d in range(10)}
    speakers = Counter(r.speaker for r in recs)
    assert len(speakers) == 6 and set(speakers.values()) == {500}
    assert all((r.take < 5) == (r.split == "test") for r in recs)
    r = next(r for r in recs if r.path.endswith("3_lucas_7.wav"))
    assert (r.label, r.speaker, r.take, r.split) == ("3", "lucas", 7, "train")


def test_bad_files_are_skipped_and_listed(tmp_path, fsdd_dir):
    good = load_wav(fsdd_dir / "1_theo_9.wav")
    write_wav(tmp_path / "1_theo_9.wav", good)
    (tmp_path / "2_theo_9.wav").write_bytes(b"RIFF\x00\x00garbage")
    (tmp_path / "3_theo_9.wav").write_bytes(b"")
    write_wav(tmp_path / "not-a-digit.wav", good)
    (tmp_path / "notes.txt").write_text("ignored")
    recs, bad = load_folder(tmp_path)
    assert [r.name for r in recs] == ["1_theo_9.wav"]
    assert len(bad) == 3
    assert any("2_theo_9.wav" in b and "not a readable WAV" in b for b in bad)
    assert any("3_theo_9.wav" in b and "empty" in b for b in bad)
    assert any("not-a-digit.wav" in b for b in bad)
    with pytest.raises(DataError, match="2_theo_9.wav"):
        load_folder(tmp_path, strict=True)


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "nope")


def test_fingerprint_changes_with_the_file_list(small_subset):
    recs, _ = load_folder(small_subset, check_audio=False)
    assert fingerprint(recs) == fingerprint(list(reversed(recs)))
    assert fingerprint(recs) != fingerprint(recs[1:])


@pytest.mark.hf
def test_hf_loader_on_local_dataset(fsdd_dir):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("torchcodec")
    from train.data import records_from_hf

    files = [fsdd_dir / f"{d}_nicolas_{t}.wav" for d in (0, 4, 9) for t in (1, 20)]
    names = [str(i) for i in range(10)]
    ds = datasets.Dataset.from_dict(
        {"audio": [str(f) for f in files], "label": [int(f.name[0]) for f in files], "speaker": ["nicolas"] * len(files)}
    )
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=8000))
    ds = ds.cast_column("label", datasets.ClassLabel(names=[f"digit-{n}" for n in names]))
    recs = records_from_hf(ds, "test")
    assert [r.label for r in recs] == [f"digit-{f.name[0]}" for f in files]  # labels come from the data set
    assert {r.speaker for r in recs} == {"nicolas"} and {r.split for r in recs} == {"test"}
    for r, f in zip(recs, files):
        ref = load_wav(f)
        assert r.audio is not None and r.audio.dtype == np.float32
        assert abs(len(r.audio) - len(ref)) <= 1
        n = min(len(ref), len(r.audio))
        assert np.max(np.abs(r.audio[:n] - ref[:n])) < 1e-3  # torchcodec decodes the same samples


@pytest.mark.hf
def test_hf_loader_reads_split_from_fsdd_file_names(fsdd_dir):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("torchcodec")
    from train.data import records_from_hf

    files = [fsdd_dir / "5_yweweler_2.wav", fsdd_dir / "6_yweweler_30.wav"]
    ds = datasets.Dataset.from_dict({"file": [str(f) for f in files], "digit": [5, 6], "filename": [f.name for f in files]})
    ds = ds.cast_column("file", datasets.Audio(sampling_rate=8000))
    recs = records_from_hf(ds, "train")
    assert [(r.label, r.speaker, r.take, r.split) for r in recs] == [("5", "yweweler", 2, "test"), ("6", "yweweler", 30, "train")]
