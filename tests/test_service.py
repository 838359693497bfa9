"""contrib/digitd.service: systemd itself checks the unit (`systemd-analyze --user verify`),
and the unit runs the daemon the way the README says (JSON Lines to the journal, socket
under %t, reload by SIGHUP)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "contrib" / "digitd.service"


def exec_line(key: str) -> str:
    return next(x.split("=", 1)[1] for x in UNIT.read_text().splitlines() if x.startswith(f"{key}="))


def test_unit_runs_the_daemon_as_documented():
    cmd = exec_line("ExecStart").split()
    assert cmd[:4] == ["%h/.local/bin/digitd", "run", "--jsonl", "--serve"] and cmd[4] == "unix:%t/digitd.sock"
    assert exec_line("ExecReload") == "/bin/kill -HUP $MAINPID"
    readme = (ROOT / "README.md").read_text()
    for command in ("install -Dm644 contrib/digitd.service ~/.config/systemd/user/digitd.service",
                    "systemctl --user enable --now digitd", "journalctl --user -u digitd -f"):
        assert command in readme and command in UNIT.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package systemd; scripts/install-system.sh)")
def test_systemd_analyze_verify(tmp_path):
    """`verify` needs no running systemd, but a runtime dir for --user and the ExecStart
    binary to exist: a private HOME with ~/.local/bin/digitd, as `pipx install .` makes it."""
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    fake = home / ".local" / "bin" / "digitd"
    fake.write_text("#!/bin/sh\nexec python3 -m digitd \"$@\"\n")
    fake.chmod(0o755)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    r = subprocess.run(["systemd-analyze", "--user", "verify", str(UNIT)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(runtime)))
    if r.returncode != 0 and "Failed to initialize manager" in r.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # unknown keys are only warnings: none allowed
    fake.unlink()  # and it does check: without the binary the unit is refused
    r = subprocess.run(["systemd-analyze", "--user", "verify", str(UNIT)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(runtime)))
    assert r.returncode != 0 and "is not executable" in r.stderr
