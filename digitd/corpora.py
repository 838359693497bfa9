"""The real-voice corpora beside FSDD and the one speaker split every command uses.

A speaker is *unseen* (never trained on, never tuned on) when the SHA-256 of the speaker id,
read as a fraction, is under `UNSEEN_FRACTION`. The rule depends only on the id, not on what a
folder holds, so adding clips never moves a speaker across the line, and the same person (the
Speech Commands ids are shared by the digits and the words folders) is on the same side
everywhere. Noise clips have no speaker: their file stem plays that role. FSDD keeps its
official take split and LOSO and is not split here.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from digitd.paths import ROOT

UNSEEN_FRACTION = 0.3
# The DEV slice: training-side speakers under this fraction (0.3-0.45). A model trained with
# `train.hold_out_dev` never hears them, so classifier-level knobs (member weights, the reject
# threshold) can be tuned on voices that model never heard, without touching the unseen side.
DEV_FRACTION = 0.45
SIDES = ("unseen", "train", "dev", "fit")  # "train" = the whole training side, dev slice included; "fit" = without it (a --hold-out-dev model's voices)

# folder name -> what its clips are: "digit" ({digit}_{speaker}_{n}.wav), "word"
# ({word}_{speaker}_{n}.wav, a non-digit word) or "noise" (noise_{n}.wav, background only)
CORPORA: dict[str, str] = {
    "speech-commands-digits": "digit",
    "audiomnist-digits": "digit",
    "speech-commands-words": "word",
    "speech-commands-noise": "noise",
}
NEAR_HOMOPHONES = ("on", "tree")  # of "one" and "three": hard negatives, reported apart
_NAME = re.compile(r"^(?P<label>[a-z0-9]+)_(?P<speaker>[A-Za-z0-9-]+?)(?:_(?P<n>\d+))?\.wav$", re.IGNORECASE)


def speaker_fraction(speaker: str) -> float:
    """The speaker id's place in [0, 1): a stable hash, identical on every machine."""
    return int.from_bytes(hashlib.sha256(speaker.encode()).digest()[:4], "little") / 2**32


def is_unseen(speaker: str) -> bool:
    return speaker_fraction(speaker) < UNSEEN_FRACTION


def is_dev(speaker: str) -> bool:
    return UNSEEN_FRACTION <= speaker_fraction(speaker) < DEV_FRACTION


def on_side(speaker: str, side: str) -> bool:
    """Is the speaker on `side` (one of SIDES) of the split?"""
    if side == "unseen":
        return is_unseen(speaker)
    if side == "train":
        return not is_unseen(speaker)
    if side == "dev":
        return is_dev(speaker)
    if side == "fit":
        return not is_unseen(speaker) and not is_dev(speaker)
    raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str  # "0".."9", the non-digit word, or "noise"
    speaker: str
    corpus: str
    kind: str  # "digit" | "word" | "noise"

    @property
    def unseen(self) -> bool:
        return is_unseen(self.speaker)


def shared_dir() -> Path:
    """$DIGITD_SHARED_DIR, else ../shared beside the checkout, else data/ in it."""
    env = os.environ.get("DIGITD_SHARED_DIR")
    if env:
        return Path(env).expanduser().resolve()
    for c in (ROOT.parent / "shared", ROOT / "data"):
        if any((c / name).is_dir() for name in CORPORA):
            return c
    return ROOT.parent / "shared"


def corpus_clips(folder: str | Path, kind: str | None = None) -> list[Clip]:
    """Every clip of one corpus folder, sorted by name. `kind` defaults to the folder's entry
    in CORPORA; files whose names do not parse are skipped."""
    folder = Path(folder)
    kind = kind or CORPORA.get(folder.name, "digit")
    out = []
    for p in sorted(folder.glob("*.wav")):
        m = _NAME.match(p.name)
        if not m:
            continue
        if kind == "noise":
            label, speaker = "noise", p.stem
        else:
            label, speaker = m["label"].lower(), m["speaker"]
            if (kind == "digit") != label.isdigit():
                continue
        out.append(Clip(p, label, speaker, folder.name, kind))
    return out


def available(root: str | Path | None = None) -> dict[str, Path]:
    """The corpora present under `root` (default: shared_dir())."""
    root = Path(root) if root else shared_dir()
    return {name: root / name for name in CORPORA if (root / name).is_dir()}


def split_clips(root: str | Path | None = None, *, unseen: bool) -> list[Clip]:
    """All clips of the present corpora on one side of the speaker split."""
    return side_clips(root, "unseen" if unseen else "train")


def side_clips(root: str | Path | None = None, side: str = "unseen") -> list[Clip]:
    """All clips of the present corpora on `side` (SIDES)."""
    return [c for name, path in available(root).items() for c in corpus_clips(path, CORPORA[name]) if on_side(c.speaker, side)]
