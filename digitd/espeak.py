"""espeak-ng speech and the evaluation voices, shared by the trainer and the room benchmark.

`VOICES` are the *evaluation* voices: never trained on (`train/synth.py` keeps its training and
detector voices disjoint from them, and `tests/test_synth.py` checks it). They live here, not in
`train/`, because the daemon package (`digitd bench --scenario room`) speaks with them too and
must never import the trainer.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from digitd import SAMPLE_RATE
from digitd.audio import load_wav, write_wav

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# espeak-ng language+variant voices: 7 female-sounding, 7 male-sounding, several accents.
VOICES = [
    "en+f1", "en+f2", "en+f3", "en-us+f4", "en+f5", "en-us-nyc+linda", "en-029+Annie",
    "en+m1", "en+m3", "en+m7", "en-gb-x-rp+m4", "en-gb-scotland+klatt", "en-us+john", "en+grandpa",
]


class EspeakError(Exception):
    """espeak-ng is missing or failed, with a one-line reason."""


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def say(text: str, voice: str, path: Path, *, speed: int = 150, pitch: int = 50) -> Path:
    """Synthesize `text` into an 8 kHz mono 16-bit WAV at `path`."""
    if not espeak_available():
        raise EspeakError("espeak-ng is not installed (apt install espeak-ng)")
    raw = path.with_suffix(".raw.wav")
    try:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                       check=True, capture_output=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise EspeakError(f"espeak-ng failed for voice {voice!r}: {e}") from None
    write_wav(path, load_wav(raw, SAMPLE_RATE), SAMPLE_RATE)
    raw.unlink()
    return path


def cache_dir(name: str) -> Path:
    """A folder in the temp dir for regenerated espeak-ng audio (none of it ships)."""
    return Path(tempfile.gettempdir()) / name


def said(text: str, voice: str, folder: Path, *, speed: int = 150, pitch: int = 50) -> Path:
    """`say`, cached in `folder` under a name made of the text, voice, rate and pitch."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = "".join(c if c.isalnum() else "-" for c in f"{text[:40]}_{voice}_s{speed}_p{pitch}")
    path = folder / f"{tag}.wav"
    if not path.exists():
        tmp = folder / f"{tag}.part.wav"
        say(text, voice, tmp, speed=speed, pitch=pitch)
        tmp.replace(path)  # a crash never leaves a half-written clip in the cache
    return path
