"""`digitd predict`: classify whole WAV clips, one JSON line per file.

Any WAV kind is accepted (downmixed, resampled to 8 kHz). A bad file prints one line to stderr
naming it, the others are still classified, and the exit status is 1 at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from digitd.audio import AUDIO_SUFFIXES, AudioError, load_wav
from digitd.model import DigitModel, load_model, reject_reason


def iter_inputs(paths: list[str]) -> Iterator[Path]:
    """Files as given; directories expand to their audio files (`AUDIO_SUFFIXES`: WAV, FLAC,
    Ogg, MP3, AIFF..., recursively, sorted)."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES)
        else:
            yield p


def predict_file(model: DigitModel, path: Path, classify: Any) -> dict[str, Any]:
    """One line: the best digit and its confidence, plus `rejected` (and why) when the daemon
    would have emitted a `rejected` event for this clip (classify.reject_threshold, min_voiced_ms, agree_min)."""
    x = load_wav(path, model.params.sample_rate)
    try:
        p = model.predict_wave(x)
    except ValueError as e:
        raise AudioError(f"{path}: {e}") from None
    out: dict[str, Any] = {"file": str(path), "digit": p.label, "confidence": round(p.confidence, 4)}
    reason = reject_reason(x, p, classify)
    if reason:
        out |= {"rejected": True, "reason": reason}
    return out


def predict_command(args: argparse.Namespace, cfg: Any) -> int:
    from digitd.profile import with_user

    model = with_user(load_model(cfg.classify.model or None), cfg)
    failed = 0
    seen = 0
    empty = [p for p in args.paths if Path(p).is_dir() and not any(True for _ in iter_inputs([p]))]
    for folder in empty:
        print(f"digitd: error: {folder}: no WAV files in this folder", file=sys.stderr, flush=True)
    for path in iter_inputs(args.paths):
        seen += 1
        try:
            print(json.dumps(predict_file(model, path, cfg.classify)), flush=True)
        except AudioError as e:
            failed += 1
            print(f"digitd: error: {e}", file=sys.stderr, flush=True)
    return 1 if failed or empty or seen == 0 else 0
