"""Generators for WAV files of every common kind, and for bad and odd inputs (issue: reliability).

Each bad kind maps to a phrase the one-line error must contain.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from scipy.io import wavfile


def tone(rate: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def write_kind(path: Path, rate: int, dtype: str, channels: int = 1, x: np.ndarray | None = None) -> Path:
    """A WAV holding `x` (float in [-1, 1]; a tone by default) in the given sample type."""
    x = tone(rate) if x is None else x
    if dtype == "uint8":
        data = np.round(x * 127 + 128).astype(np.uint8)
    elif dtype == "int16":
        data = np.round(x * 32767).astype(np.int16)
    elif dtype == "int32":
        data = np.round(x * (2**31 - 1)).astype(np.int32)
    elif dtype == "int24":
        data = np.round(x * (2**23 - 1)).astype(np.int32)
    else:
        data = x.astype(dtype)
    if channels > 1:
        data = np.stack([data] * channels, axis=1)
    if dtype == "int24":
        _write_int24(path, rate, data)
    else:
        wavfile.write(path, rate, data)
    return path


def _write_int24(path: Path, rate: int, data: np.ndarray) -> None:
    frames = data.reshape(len(data), -1)
    ch = frames.shape[1]
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in frames.ravel())
    hdr = b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVE"
    hdr += b"fmt " + struct.pack("<IHHIIHH", 16, 1, ch, rate, rate * ch * 3, ch * 3, 24)
    hdr += b"data" + struct.pack("<I", len(raw))
    path.write_bytes(hdr + raw)


def make_bad_inputs(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, phrase expected in the error)."""
    d.mkdir(parents=True, exist_ok=True)
    good = write_kind(d / "good.wav", 8000, "int16")
    raw = good.read_bytes()
    out: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes, phrase: str) -> None:
        p = d / name
        p.write_bytes(data)
        out[name] = (p, phrase)

    put("empty.wav", b"", "empty file")
    put("header_only.wav", raw[:44], "truncated")
    put("truncated.wav", raw[:1000], "truncated")
    put("half_header.wav", raw[:20], "not a readable WAV")
    put("text.wav", b"this is not audio at all, just some text\n" * 10, "not a readable WAV")
    put("riff_garbage.wav", b"RIFF" + os.urandom(200), "not a readable WAV")
    put("mp3_named_wav.wav", b"ID3\x03\x00\x00\x00" + os.urandom(500), "not a readable WAV")
    # a complete RIFF/WAVE header with a fmt chunk and no data chunk at all
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    put("no_data_chunk.wav", b"RIFF" + struct.pack("<I", len(body)) + body, "no data chunk")
    # a damaged fmt chunk in an otherwise whole file (the 44-byte header: channels at 22, rate at
    # 24): nothing to divide by, or a rate no recording has
    put("zero_channels.wav", raw[:22] + struct.pack("<H", 0) + raw[24:], "0 channels or 0 bytes per frame")
    put("huge_rate.wav", raw[:24] + struct.pack("<I", 2**31 - 1) + raw[28:], "invalid sample rate")
    zero = d / "zero_length.wav"
    wavfile.write(zero, 8000, np.zeros(0, dtype=np.int16))
    out["zero_length.wav"] = (zero, "no audio samples")
    nan = d / "nan.wav"
    wavfile.write(nan, 8000, np.where(np.arange(4000) % 97 == 0, np.nan, tone(8000)[:4000]).astype(np.float32))
    out["nan.wav"] = (nan, "NaN")
    inf = d / "inf.wav"
    wavfile.write(inf, 8000, np.where(np.arange(4000) == 7, np.inf, tone(8000)[:4000]).astype(np.float32))
    out["inf.wav"] = (inf, "NaN or infinite")
    folder = d / "a_directory.wav"
    folder.mkdir(exist_ok=True)
    out["a_directory.wav"] = (folder, "is a directory")
    out["missing.wav"] = (d / "missing.wav", "no such file")
    # containers libsndfile does not read: named, with the ffmpeg line that makes a WAV
    put("phone.m4a", struct.pack(">I", 24) + b"ftypM4A " + os.urandom(400), "it is MP4 / M4A")
    put("clip.webm", b"\x1aE\xdf\xa3" + os.urandom(400), "it is WebM")
    return out


# (name, sox arguments, decoded sample rate, largest error against the source): codings and
# containers libsndfile decodes (telephone WAVs, FLAC, Ogg Vorbis, AIFF, GSM); lossy ones are close
DECODED_KINDS = [
    ("mulaw.wav", ["-e", "u-law"], 8000, 0.03),
    ("alaw.wav", ["-e", "a-law"], 8000, 0.03),
    ("adpcm.wav", ["-e", "ima-adpcm"], 8000, 0.05),
    ("gsm.wav", ["-e", "gsm-full-rate"], 8000, 0.3),
    ("clip.flac", ["-r", "16000"], 16000, 0.02),
    ("clip.ogg", ["-r", "16000"], 16000, 0.1),
    ("clip.aiff", ["-r", "22050", "-c", "2"], 22050, 0.02),
]


# (name, rate, dtype, channels): kinds that must load as the same audio
GOOD_KINDS = [
    ("8k_int16_mono", 8000, "int16", 1),
    ("16k_int16_mono", 16000, "int16", 1),
    ("22k_int16_mono", 22050, "int16", 1),
    ("44k_int16_stereo", 44100, "int16", 2),
    ("48k_int16_mono", 48000, "int16", 1),
    ("8k_uint8_mono", 8000, "uint8", 1),
    ("16k_int24_mono", 16000, "int24", 1),
    ("48k_int32_mono", 48000, "int32", 1),
    ("44k_float32_mono", 44100, "float32", 1),
    ("16k_float64_mono", 16000, "float64", 1),
    ("48k_int16_6ch", 48000, "int16", 6),
]
