"""Paced (live-like) measurement: DER, stream and wall-clock end-of-speech latency.

  python scripts/measure_live.py [--model models/default.npz] [--digits 40]
The stream plays at real time through the same ring buffer as the microphone and the
classifier runs in its worker thread, so `emitted` includes compute (compute-aware).
Wall latency = time the event reached the sink - time the word's last sample was due.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from digitd.config import Config  # noqa: E402
from digitd.model import ModelError, load_model  # noqa: E402
from digitd.pipeline import Pipeline  # noqa: E402
from digitd.scoring import score  # noqa: E402
from digitd.sources import FileSource  # noqa: E402
from digitd.synth import make_stream  # noqa: E402


class Rec:
    def __init__(self) -> None:
        self.ev, self.t = [], []

    def handle(self, e) -> None:
        self.ev.append(e)
        self.t.append(time.monotonic())

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--digits", type=int, default=40)
    ap.add_argument("--seed", type=int, default=300)
    args = ap.parse_args()
    try:
        model = load_model(args.model)
    except ModelError as e:
        sys.exit(f"measure_live: error: {e}")
    model.warm_up()
    out = {}
    for name, noise, snr in [("clean", "none", 0.0), ("pink20", "pink", 20.0)]:
        audio, truth = make_stream(args.digits, seed=args.seed, noise=noise, snr_db=snr)
        rec = Rec()
        src = FileSource(audio, "1")
        p = Pipeline(Config(), model, [rec])
        p.run(src)
        sc = score(rec.ev, [t.to_dict() for t in truth])
        digits = [e for e in rec.ev if getattr(e, "kind", "") == "digit"]
        at = {id(e): i for i, e in enumerate(rec.ev)}
        wall = [1000 * (rec.t[at[id(digits[j])]] - (src.t0 + truth[i].end)) for i, j in sc.pairs]
        out[name] = {**sc.to_dict(), "wall_p50_ms": round(float(np.percentile(wall, 50)), 1),
                     "wall_p95_ms": round(float(np.percentile(wall, 95)), 1), "overflows": p.counts["overflows"]}
        print(json.dumps({name: out[name]}), flush=True)


if __name__ == "__main__":
    main()
