"""Where the Free Spoken Digit Dataset lives: one lookup for the trainer, bench and tests."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fsdd_dir(configured: str = "") -> Path:
    """`configured`, else $DIGITD_FSDD_DIR, else ../shared/fsdd/recordings beside the checkout,
    else data/fsdd/recordings (where scripts/get-data.sh puts a fresh clone)."""
    if configured:
        return Path(configured).expanduser().resolve()
    env = os.environ.get("DIGITD_FSDD_DIR")
    if env:
        return Path(env).expanduser().resolve()
    cands = [ROOT.parent / "shared" / "fsdd" / "recordings", ROOT / "data" / "fsdd" / "recordings",
             Path.cwd() / "data" / "fsdd" / "recordings"]
    for c in cands:
        if c.is_dir():
            return c
    return cands[0]
