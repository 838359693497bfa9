"""Training data: FSDD-style WAV folders and the Hugging Face copy of FSDD, as plain records.

A record carries either a path (read lazily, in the worker that extracts its features) or the
decoded audio (Hugging Face rows), so both sources feed the same feature pipeline.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from digitd import SAMPLE_RATE
from digitd.corpora import is_dev, is_unseen
from digitd.paths import fsdd_dir
from digitd.audio import AudioError, load_wav, prepare_clip

# FSDD's official split: takes 0-4 are the test set, 5-49 the training set.
TEST_TAKES = range(0, 5)
NAME_RE = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9-]+)_(?P<take>\d+)\.wav$", re.IGNORECASE)
HF_NAME = "mteb/free-spoken-digit-dataset"


class DataError(Exception):
    """A data source that cannot be used at all, with a one-line reason."""


@dataclass
class Record:
    """One labelled utterance; `audio` is None until loaded (folder records load lazily)."""

    label: str
    speaker: str
    take: int
    split: str  # "train" | "test" | "extra"
    path: str = ""
    audio: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else f"{self.label}_{self.speaker}_{self.take}"

    def load(self) -> np.ndarray:
        if self.audio is not None:
            return self.audio
        return load_wav(self.path, SAMPLE_RATE)


def split_of_take(take: int) -> str:
    return "test" if take in TEST_TAKES else "train"


def default_data_dir(configured: str = "") -> Path:
    """Configured dir, else $DIGITD_FSDD_DIR, else ../shared/fsdd/recordings, else data/fsdd (digitd.paths)."""
    return fsdd_dir(configured)


def load_folder(
    folder: str | Path, *, strict: bool = False, check_audio: bool = True, split_by_take: bool = True
) -> tuple[list[Record], list[str]]:
    """Records of `{digit}_{speaker}_{take}.wav` files in `folder`, plus one line per skipped file.

    `split_by_take=False` marks every record "extra" (other corpora, split by speaker instead).
    With `strict`, the first bad file raises `DataError`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found (set --data, train.data_dir or $DIGITD_FSDD_DIR)")
    records: list[Record] = []
    bad: list[str] = []

    def reject(msg: str) -> None:
        if strict:
            raise DataError(msg)
        bad.append(msg)

    for p in sorted(folder.iterdir()):
        if p.suffix.lower() != ".wav":
            continue
        m = NAME_RE.match(p.name)
        if not m:
            reject(f"{p}: name is not {{digit}}_{{speaker}}_{{take}}.wav")
            continue
        if check_audio:
            try:
                x = load_wav(p, SAMPLE_RATE)
            except AudioError as e:
                reject(str(e))
                continue
            if len(x) < int(0.05 * SAMPLE_RATE):
                reject(f"{p}: too short ({len(x)} samples)")
                continue
        take = int(m["take"])
        split = split_of_take(take) if split_by_take else "extra"
        records.append(Record(m["digit"], m["speaker"], take, split, str(p)))
    if not records:
        raise DataError(f"{folder}: no usable {{digit}}_{{speaker}}_{{take}}.wav files")
    return records, bad


def fingerprint(records: Iterable[Record]) -> str:
    """SHA-256 over sorted (name, size, label) so the card says exactly which data trained the model."""
    h = hashlib.sha256()
    rows = []
    for r in records:
        size = os.path.getsize(r.path) if r.path and os.path.exists(r.path) else (0 if r.audio is None else r.audio.size)
        rows.append(f"{r.name}\t{size}\t{r.label}\t{r.split}")
    for row in sorted(rows):
        h.update(row.encode() + b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------- Hugging Face

AUDIO_NAMES = ("audio", "file", "speech")
LABEL_NAMES = ("label", "labels", "digit", "class", "target")
SPEAKER_NAMES = ("speaker", "speaker_id", "speakerid", "spk")
FILE_NAMES = ("filename", "file_name", "path", "file")


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def hf_columns(ds: Any) -> dict[str, str | None]:
    """Find the audio, label, speaker and file-name columns of a `datasets.Dataset`.

    Assumption (the hub card could not be read offline): the audio column is the one with the
    `Audio` feature type (else one named audio/file/speech); the label is a ClassLabel or a
    column named label/digit/...; speaker and file name are optional.
    """
    from datasets import Audio, ClassLabel

    cols = list(ds.column_names)
    audio = next((c for c, f in ds.features.items() if isinstance(f, Audio)), None) or _pick(cols, AUDIO_NAMES)
    label = next((c for c, f in ds.features.items() if isinstance(f, ClassLabel)), None) or _pick(cols, LABEL_NAMES)
    if audio is None or label is None:
        raise DataError(f"Hugging Face data set has no recognisable audio/label columns (columns: {cols})")
    return {"audio": audio, "label": label, "speaker": _pick(cols, SPEAKER_NAMES), "file": _pick(cols, FILE_NAMES)}


def _decode(value: Any) -> tuple[np.ndarray, int]:
    """An `Audio` cell -> (float samples, rate): torchcodec AudioDecoder or the legacy dict."""
    if isinstance(value, dict):
        return np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    samples = value.get_all_samples()  # torchcodec.decoders.AudioDecoder (datasets >= 4)
    data = samples.data.numpy()
    x = data.mean(axis=0) if data.ndim == 2 else data
    return np.asarray(x, dtype=np.float32), int(samples.sample_rate)


def ds_name(ds: Any) -> str:
    info = getattr(ds, "info", None)
    return str(getattr(info, "dataset_name", None) or "dataset")


def records_from_hf(ds: Any, split_name: str | None = None) -> list[Record]:
    """Rows of a `datasets.Dataset` -> records with decoded 8 kHz audio.

    Labels come from the data set (ClassLabel names when present). Speaker and take come from a
    speaker column or an FSDD file name when present; otherwise take/split come from `split_name`.
    """
    from datasets import Audio, ClassLabel

    cols = hf_columns(ds)
    feat = ds.features[cols["label"]]
    names = feat.names if isinstance(feat, ClassLabel) else None
    if not isinstance(ds.features[cols["audio"]], Audio):
        ds = ds.cast_column(cols["audio"], Audio(sampling_rate=SAMPLE_RATE))
    out: list[Record] = []
    for i, row in enumerate(ds):
        raw = row[cols["label"]]
        label = names[raw] if names is not None else str(raw)
        x, rate = _decode(row[cols["audio"]])
        x = prepare_clip(x, rate, f"{ds_name(ds)} row {i}")
        fname = str(row[cols["file"]]) if cols["file"] and isinstance(row[cols["file"]], str) else ""
        m = NAME_RE.match(Path(fname).name) if fname else None
        speaker = str(row[cols["speaker"]]) if cols["speaker"] else (m["speaker"] if m else "unknown")
        take = int(m["take"]) if m else i
        if m:
            split = split_of_take(take)
        else:
            split = "test" if split_name == "test" else "train"
        out.append(Record(str(label), speaker, take, split, fname, x))
    return out


def load_hf(name: str = HF_NAME) -> list[Record]:
    """FSDD from the Hugging Face hub (needs the `hf` extra and network access)."""
    try:
        import datasets
    except ImportError as e:
        raise DataError(f"--hf needs the optional 'datasets' package ({e}); pip install 'digitd[hf]'") from None
    import logging

    datasets.logging.set_verbosity_error()  # retries and warnings would break the one-line error
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        dd = datasets.load_dataset(name)
    except Exception as e:  # noqa: BLE001 - network/hub errors come in many types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot load {name} from the Hugging Face hub ({msg[:200]})") from None
    records: list[Record] = []
    for split_name, ds in dd.items():
        records += records_from_hf(ds, split_name)
    return records


def split_extra(records: list[Record], hold_out_dev: bool = False) -> list[Record]:
    """Mark the unseen SPEAKERS of an extra corpus "extra-test" (never trained on), the rest
    "extra": the one split of digitd.corpora, a hash of the speaker id. With `hold_out_dev`
    the dev slice of the training side is "extra-dev" (not trained on either)."""
    for r in records:
        r.split = "extra-test" if is_unseen(r.speaker) else "extra-dev" if hold_out_dev and is_dev(r.speaker) else "extra"
    return records


def load_extra(folder: str | Path, *, strict: bool = False, hold_out_dev: bool = False) -> tuple[list[Record], list[str]]:
    """An extra `{digit}_{speaker}_{n}.wav` corpus (e.g. Speech Commands digits), split by speaker."""
    recs, bad = load_folder(folder, strict=strict, split_by_take=False)
    return split_extra(recs, hold_out_dev), bad
