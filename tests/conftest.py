"""Shared fixtures: the real FSDD folder (skip cleanly when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def find_fsdd() -> Path | None:
    env = os.environ.get("DIGITD_FSDD_DIR")
    cands = [Path(env)] if env else []
    cands += [ROOT.parent / "shared" / "fsdd" / "recordings", ROOT.parent.parent / "shared" / "fsdd" / "recordings"]
    for c in cands:
        if c.is_dir() and any(c.glob("*.wav")):
            return c
    return None


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    d = find_fsdd()
    if d is None:
        pytest.skip("FSDD recordings not found ($DIGITD_FSDD_DIR or ../shared/fsdd/recordings)")
    return d


@pytest.fixture(scope="session")
def small_subset(fsdd_dir: Path, tmp_path_factory) -> Path:
    """2 speakers x 10 digits x takes {0,1,5..12}: a real but tiny FSDD-shaped folder (symlinks)."""
    out = tmp_path_factory.mktemp("fsdd_small")
    for spk in ("george", "jackson"):
        for d in range(10):
            for take in (0, 1, *range(5, 13)):
                src = fsdd_dir / f"{d}_{spk}_{take}.wav"
                (out / src.name).symlink_to(src)
    return out
