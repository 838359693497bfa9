"""Measure DER and end-of-speech latency on generated streams for endpointer settings.

  python scripts/tune_endpoint.py --model /tmp/dev-model/default.npz \
      --set vad.aggressiveness=2,3 --set endpoint.hangover_ms=120,150,210
Runs every combination on: clean, white 20 dB, pink 10 dB streams (+ 60 s noise-only
false-accept check) with speed=max (compute-unaware stream latency), prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from digitd import config as config_mod  # noqa: E402
from digitd.model import ModelError, load_model  # noqa: E402
from digitd.pipeline import Pipeline  # noqa: E402
from digitd.scoring import score  # noqa: E402
from digitd.sources import FileSource  # noqa: E402
from digitd.synth import make_stream, noise_stream  # noqa: E402

# name, noise, snr_db, gap range (s)
CONDITIONS = [("clean", "none", 0.0, (0.15, 2.0)), ("quick", "none", 0.0, (0.15, 0.3)),
              ("white20", "white", 20.0, (0.15, 2.0)), ("pink20", "pink", 20.0, (0.15, 2.0)),
              ("white10", "white", 10.0, (0.15, 2.0)), ("pink10", "pink", 10.0, (0.15, 2.0))]


def oracle_der(model, audio, truth) -> float:
    """Model-only error: classify each true word segment directly (no endpointer)."""
    wrong = 0
    for t in truth:
        seg = audio[int(t.start * 8000) : int(t.end * 8000)]
        wrong += model.predict_wave(seg, trimmed=True).label != t.digit
    return wrong / len(truth)


class Collect:
    def __init__(self) -> None:
        self.events = []

    def handle(self, e) -> None:
        self.events.append(e)

    def close(self) -> None:
        pass


def run_once(cfg, model, audio):
    sink = Collect()
    p = Pipeline(cfg, model, [sink], threaded=False)
    p.run(FileSource(audio, "max"))
    p.events = sink.events  # the pipeline keeps no event log; attach this run's
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--set", action="append", default=[], help="section.key=v1,v2")
    ap.add_argument("--digits", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--conditions", default=",".join(c[0] for c in CONDITIONS))
    ap.add_argument("--noise-only", type=float, default=60.0, help="seconds of pure noise per kind (0 = skip)")
    args = ap.parse_args()
    try:
        model = load_model(args.model)
    except ModelError as e:
        sys.exit(f"tune_endpoint: error: {e}")
    model.warm_up()
    grid = []
    for s in args.set:
        k, vs = s.split("=", 1)
        grid.append([(k, v) for v in vs.split(",")])
    conds = [c for c in CONDITIONS if c[0] in args.conditions.split(",")]
    streams = {}
    oracle = {}
    for name, noise, snr, (g0, g1) in conds:
        streams[name] = [make_stream(args.digits, seed=100 + k, noise=noise, snr_db=snr, gap_min_s=g0, gap_max_s=g1)
                         for k in range(args.seeds)]
        oracle[name] = round(sum(oracle_der(model, a, t) for a, t in streams[name]) / args.seeds, 4)
    print(json.dumps({"oracle_der (model alone on true segments)": oracle}), flush=True)
    for combo in itertools.product(*grid) if grid else [()]:
        cfg = config_mod.load(None, [f"{k}={v}" for k, v in combo])
        row = {"cfg": dict(combo)}
        for name, *_ in conds:
            S = D = I = N = 0
            lats = []
            for audio, truth in streams[name]:
                p = run_once(cfg, model, audio)
                sc = score([e.to_dict() for e in p.events], [t.to_dict() for t in truth])
                S += sc.substitutions; D += sc.deletions; I += sc.insertions; N += sc.n
                lats += sc.latencies_s
            import numpy as np
            row[name] = {"der": round((S + D + I) / N, 4), "S": S, "D": D, "I": I,
                         "p50": round(1000 * float(np.percentile(lats, 50))), "p95": round(1000 * float(np.percentile(lats, 95)))}
        if args.noise_only:
            fa = {}
            for kind in ("white", "pink"):
                for lvl in (-45, -30, -20):
                    p = run_once(cfg, model, noise_stream(args.noise_only, kind, lvl, seed=7))
                    fa[f"{kind}{lvl}"] = [p.counts["digits"], p.counts["rejected"]]
            row["noise_only_digits_rejected"] = fa
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
