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

from digitd.audio import AudioError, load_wav
from digitd.model import DigitModel, load_model


def iter_inputs(paths: list[str]) -> Iterator[Path]:
    """Files as given; directories expand to their *.wav files (recursively, sorted)."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() == ".wav")
        else:
            yield p


def predict_file(model: DigitModel, path: Path) -> dict[str, Any]:
    x = load_wav(path, model.params.sample_rate)
    try:
        p = model.predict_wave(x)
    except ValueError as e:
        raise AudioError(f"{path}: {e}") from None
    return {"file": str(path), "digit": p.label, "confidence": round(p.confidence, 4)}


def predict_command(args: argparse.Namespace, cfg: Any) -> int:
    model = load_model(cfg.classify.model or None, keep_estimator=False)
    failed = 0
    seen = 0
    for path in iter_inputs(args.paths):
        seen += 1
        try:
            print(json.dumps(predict_file(model, path)), flush=True)
        except AudioError as e:
            failed += 1
            print(f"digitd: error: {e}", file=sys.stderr, flush=True)
    if seen == 0:
        print("digitd: error: no WAV files found in the given directories", file=sys.stderr)
        return 1
    return 1 if failed else 0
