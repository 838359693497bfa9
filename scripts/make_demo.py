"""Regenerate digitd/data/demo.wav + demo.json (FSDD TEST-split digits, pauses 0.15-2 s).

Audio derived from the Free Spoken Digit Dataset, Zohar Jackson and contributors, CC BY-SA 4.0.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from digitd.audio import write_wav  # noqa: E402
from digitd.synth import make_stream  # noqa: E402

out = Path(__file__).resolve().parents[1] / "digitd" / "data"
audio, truth = make_stream(n_digits=16, seed=2024, level_min_db=-10.0, level_max_db=-3.0, lead_s=0.6)
write_wav(out / "demo.wav", audio)
(out / "demo.json").write_text(json.dumps([t.to_dict() for t in truth], indent=1) + "\n")
print(f"{len(audio) / 8000:.1f} s, digits: {''.join(t.digit for t in truth)}")
