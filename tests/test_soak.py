"""The soak script (scripts/soak.py) on 5 minutes of audio: flat RSS, well-formed events, no drift.

The README names the 1-hour run: python scripts/soak.py --minutes 60 --window-min 10
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_five_minute_soak(fsdd, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), DIGITD_FSDD_DIR=str(fsdd), TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "5", "--window-min", "1"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "soak: OK" in r.stdout
    assert "malformed: 0" in r.stdout
    assert list(tmp_path.iterdir()) == []  # its 5-minute stream went with it (--keep keeps one)
