"""Rewrite a model file with float16 support vectors, after proving it predicts the same.

The support vectors are most of a model file (v6: 13,256 x 338 float32 = 17.9 of 20 MB of
arrays) and barely compress; stored as float16 the file halves, and `digitd.runtime.prepare`
widens them back to float32 at load (same memory and speed). Rounding them to 11 bits moves
the probabilities a little, so this refuses to write unless, on every clip given, the predicted
class is the same and the confidence moves by at most --tol. Nothing is retrained.

    python scripts/half_model.py models/default.npz /tmp/half/default.npz \
        --clips ../shared/fsdd/recordings ../shared/speech-commands-digits ...

The card is carried over (eval results included: re-run `digitd eval` on the new file before
trusting them) with a `support_vectors` note of what was checked.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from digitd.audio import load_wav
from digitd.model import DigitModel, ModelError, load_model, save_model, sha256_file
from digitd.runtime import half_support_vectors, prepare


def clips(paths: list[str], every: int) -> list[Path]:
    """WAVs of the given files and folders; in an FSDD folder only its test split ({d}_{spk}_{0-4}),
    elsewhere every `every`-th file (sorted), so a check covers many corpora in a few minutes."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
            continue
        files = sorted(p.rglob("*.wav"))
        fsdd = [f for f in files if re.fullmatch(r"\d_[a-z]+_[0-4]\.wav", f.name)]
        out += fsdd if fsdd and p.name == "recordings" else files[::every]
    return out


def probabilities(model: DigitModel, files: list[Path]) -> np.ndarray:
    return np.array([model.probabilities(model.features(load_wav(f))) for f in files])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--clips", nargs="+", required=True, metavar="FILE_OR_DIR")
    ap.add_argument("--every", type=int, default=10, help="take every N-th clip of a non-FSDD folder")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest allowed confidence change")
    a = ap.parse_args(argv)
    try:
        full = load_model(a.model)
    except ModelError as e:
        sys.exit(f"half_model: error: {e}")
    files = clips(a.clips, a.every)
    if not files:
        print("no clips found", file=sys.stderr)
        return 2
    half_rt = prepare(half_support_vectors(full.runtime))
    meta = {k: v for k, v in full.meta.items() if k not in ("path", "card")}
    half = DigitModel(None, full.classes, full.params, meta, runtime=half_rt, cnn=full.cnn, embed=full.embed)
    p_full, p_half = probabilities(full, files), probabilities(half, files)
    same = p_full.argmax(1) == p_half.argmax(1)
    d_conf = float(np.abs(p_full.max(1) - p_half.max(1)).max())
    d_prob = float(np.abs(p_full - p_half).max())
    print(f"{len(files)} clips: predicted class changed on {int((~same).sum())}, "
          f"max confidence change {d_conf:.2e}, max probability change {d_prob:.2e}")
    if not same.all() or d_conf > a.tol:
        print(f"refusing: predictions differ beyond --tol {a.tol}", file=sys.stderr)
        return 1
    card = dict(full.meta["card"])
    note = {"dtype": "float16", "widened_at_load": "float32", "from_sha256": sha256_file(a.model),
            "checked_on_clips": len(files), "argmax_changed": 0, "max_confidence_change": d_conf,
            "max_probability_change": d_prob, "how": "scripts/half_model.py " + " ".join(argv or sys.argv[1:])}
    card["support_vectors"] = note
    save_model(half, a.out, card, sv_float16=True)
    again = probabilities(load_model(a.out), files)  # the file as written, read back
    if not np.array_equal(again, p_half):
        print("refusing: the written file does not score as checked", file=sys.stderr)
        Path(a.out).unlink()
        return 1
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.1f} MB, was {Path(a.model).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
