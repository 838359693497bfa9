"""Write digitd/data/speech_spectrum.json: the long-term spectrum of the training side's speech.

  python scripts/speech_spectrum.py [--out digitd/data/speech_spectrum.json]

Why: `digitd.equalize` sets the speech a stream's microphone gives against the speech the members
learned from, and undoes the broad difference. The reference is the digit clips of the training
side without the dev slice (digitd/corpora.py's "fit" side: Speech Commands and AudioMNIST voices,
hundreds of speakers through as many microphones), each frame over the clip's noise counted alike,
exactly as `Equalizer.observe` counts a stream's. FSDD's six voices through one microphone are left
out: the reference is a population's speech, not one recording setup's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
from rich.progress import track  # noqa: E402

from digitd import SAMPLE_RATE  # noqa: E402
from digitd.audio import load_wav  # noqa: E402
from digitd.corpora import side_clips  # noqa: E402
from digitd.equalize import BINS, NPERSEG, REFERENCE, frame_power, speech_spectrum  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REFERENCE), help="where to write it")
    ap.add_argument("--over-db", type=float, default=6.0, help="a frame this far over the clip's noise is speech (equalize.over_noise_db)")
    args = ap.parse_args()
    clips = [c for c in side_clips(None, "fit") if c.kind == "digit"]
    if not clips:
        print("speech_spectrum: no training-side digit clips (set DIGITD_SHARED_DIR)", file=sys.stderr)
        return 1
    total, frames = np.zeros(BINS), 0
    for c in track(clips, description="speech spectrum"):
        s, n = speech_spectrum(frame_power(load_wav(c.path)), None, args.over_db)
        total += s * n
        frames += n
    db = 10.0 * np.log10(total / frames + 1e-20)
    db -= db.max()
    out = {"rate": SAMPLE_RATE, "nperseg": NPERSEG, "db": [round(float(v), 2) for v in db],
           "clips": len(clips), "speakers": len({c.speaker for c in clips}), "frames": frames,
           "how": "scripts/speech_spectrum.py: digit clips of the fit side (digitd/corpora.py), every word "
                  f"{args.over_db:g} dB over the clip's quietest fifth, its frames over the noise summed, the noise taken out, at unit power, weighted by its frames; dB, peak 0"}
    with open(args.out, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"{args.out}: {len(clips)} clips, {out['speakers']} speakers, {frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
