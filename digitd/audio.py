"""Reading audio files, downmixing and resampling to the model rate.

WAV of any common kind is read here (plain PCM directly, the rest through scipy.io.wavfile);
what neither reads, libsndfile decodes through python-soundfile: FLAC, Ogg Vorbis / Opus, MP3,
AIFF, CAF, and WAVs in telephone codings (mu-law, A-law, ADPCM, GSM). Every failure becomes an
`AudioError` whose message names the file and the reason, so the CLI can print one line and
exit non-zero instead of a traceback.
"""

from __future__ import annotations

import os
import shlex
import struct
import sys
import warnings
from math import gcd
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from digitd import SAMPLE_RATE


# what a folder given to `digitd predict` is searched for: WAV and the containers libsndfile reads
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".caf", ".au"})


class AudioError(Exception):
    """A WAV that cannot be used, with a one-line reason."""


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not a WAV file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")


def read_wav(path: str | os.PathLike, *, mmap: bool = False) -> tuple[int, np.ndarray]:
    """(rate, samples) as stored: shape (n,) or (n, channels), native dtype (float32 when
    libsndfile decoded them).

    `mmap=True` maps the data instead of reading it, so hours-long files cost no memory
    (scipy cannot map 24-bit data; those are read whole). A plain PCM file (`_plain_layout`) is
    read without scipy; other WAVs go through scipy.io.wavfile, whose errors become the one-line
    reasons below; a file neither reads (another container or coding) is decoded by libsndfile.
    """
    rate, data = _read(Path(path), mmap)
    if isinstance(data, Decoded):
        return rate, data.read()
    return rate, data


class Decoded:
    """A recording libsndfile decodes (python-soundfile): its rate from the header, and its
    samples read block by block, so an hours-long FLAC or MP3 (or a pipe) is never held whole.
    `opener` gives the soundfile.SoundFile to read it from."""

    def __init__(self, name: str, rate: int, opener: Callable[[], Any]) -> None:
        self.name, self.rate, self._open = name, _checked_rate(name, rate), opener

    def blocks(self, n: int) -> Iterator[np.ndarray]:
        """float32 blocks of `n` frames, (n,) mono or (n, channels). Not SoundFile.blocks():
        GSM in a WAV, or a pipe, cannot seek."""
        try:
            with self._open() as f:
                while len(b := f.read(n, dtype="float32")):
                    yield b
        except (RuntimeError, ValueError, TypeError) as e:  # soundfile.LibsndfileError is a RuntimeError
            raise AudioError(f"{self.name}: the audio cannot be decoded ({_reason(e)})") from None

    def read(self) -> np.ndarray:
        parts = list(self.blocks(1 << 16))
        data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if len(data) == 0:
            raise AudioError(f"{self.name}: no audio samples")
        return data


def _soundfile() -> Any:
    """python-soundfile, or None when it (or its libsndfile) is missing."""
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the package without its libsndfile
        return None
    return soundfile


STDIN = "-"  # `run --input -`: a WAV piped in, e.g. from ffmpeg or arecord


def _stdin() -> Decoded:
    """Standard input, read as it arrives (libsndfile reads a WAV header from a pipe; raw samples
    without one it cannot place, and FLAC from a pipe it loses sync on). Opened here, so what is
    not a recording fails before the first block."""
    sf = _soundfile()
    if sf is None:
        raise AudioError("standard input: reading it needs python-soundfile (pip install soundfile)")
    try:
        f = sf.SoundFile(sys.stdin.fileno(), closefd=False)
    except (RuntimeError, ValueError, TypeError, OSError) as e:
        raise AudioError(f"standard input: not a recording digitd can read ({_reason(e)}; "
                         "pipe a WAV, e.g. ffmpeg -i IN -ac 1 -ar 16000 -f wav -)") from None
    return Decoded("standard input", int(f.samplerate), lambda: f)


def _decodable(path: Path) -> Decoded | None:
    """`path` as libsndfile sees it, or None when it cannot read it either (or soundfile is missing)."""
    sf = _soundfile()
    if sf is None:
        return None
    try:
        info = sf.info(str(path))
    except (RuntimeError, ValueError, TypeError):
        return None
    if info.samplerate <= 0 or info.frames <= 0 or info.channels < 1:
        return None
    return Decoded(str(path), int(info.samplerate), lambda: sf.SoundFile(str(path)))


# the fastest audio interfaces sold record at 768 kHz; a header over it is damage, not audio (and
# resampling from it would allocate gigabytes)
MAX_RATE = 768_000


def _checked_rate(name: str, rate: int) -> int:
    if not 0 < rate <= MAX_RATE:
        raise AudioError(f"{name}: invalid sample rate {rate} (a recording's is 1..{MAX_RATE} Hz)")
    return int(rate)


def _read(path: Path, mmap: bool) -> tuple[int, np.ndarray | Decoded]:
    _check_readable(path)
    plain = _plain_layout(path)
    if plain is not None:
        rate, dtype, shape, offset = plain
        if mmap:
            return rate, np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
        count = int(np.prod(shape))
        return rate, np.fromfile(path, dtype=dtype, count=count, offset=offset).reshape(shape)
    from scipy.io import wavfile  # lazy: ~18 MB and ~0.13 s

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            try:
                rate, data = wavfile.read(path, mmap=mmap)
            except ValueError:
                if not mmap:
                    raise
                # scipy cannot map 24-bit data, and a truncated file fails to map:
                # a plain read handles the first and diagnoses the second.
                rate, data = wavfile.read(path, mmap=False)
    except struct.error:
        raise AudioError(f"{path}: not a readable WAV file (incomplete header)") from None
    except UnboundLocalError:  # scipy: a header that parses but never reaches a data chunk
        raise AudioError(f"{path}: not a readable WAV file (no data chunk)") from None
    except ZeroDivisionError:  # scipy divides by the header's channel count and bytes per frame
        raise AudioError(f"{path}: not a readable WAV file (its header gives 0 channels or 0 bytes per frame)") from None
    except (ValueError, EOFError, OSError, IndexError, KeyError) as e:
        decoded = _decodable(path)  # FLAC, Ogg, MP3, AIFF, a mu-law WAV...: libsndfile's
        if decoded is not None:
            return decoded.rate, decoded
        kind = _other_format(path)
        if kind is not None:  # a phone's or an editor's recording: say what it is and how to get a WAV
            raise AudioError(f"{path}: not a readable WAV file (it is {kind}; digitd reads WAV: convert it first, "
                             f"e.g. ffmpeg -i {shlex.quote(str(path))} -ac 1 -ar 16000 out.wav)") from None
        raise AudioError(f"{path}: not a readable WAV file ({_reason(e)})") from None
    for w in caught:
        if "EOF" in str(w.message) or "prematurely" in str(w.message):
            raise AudioError(f"{path}: truncated WAV data (the file is shorter than its header says)")
    _checked_rate(str(path), rate)
    if data.size == 0 or len(data) == 0:
        raise AudioError(f"{path}: no audio samples")
    if data.dtype.kind not in "iuf":
        raise AudioError(f"{path}: unsupported sample type {data.dtype}")
    return int(rate), data


# leading bytes of the audio containers people most often have instead of a WAV
_MAGIC = ((0, b"fLaC", "FLAC"), (0, b"OggS", "Ogg (Vorbis / Opus)"), (0, b"ID3", "MP3"), (4, b"ftyp", "MP4 / M4A"),
          (0, b"\x1aE\xdf\xa3", "WebM / Matroska"), (0, b"FORM", "AIFF"), (0, b"caff", "CAF"))


def _other_format(path: Path) -> str | None:
    """The name of a known non-WAV audio format `path` starts like, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    for at, magic, name in _MAGIC:
        if head[at : at + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame header
        return "MP3"
    return None


def _reason(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg.rstrip(".")


def to_mono_float(data: np.ndarray) -> np.ndarray:
    """Any stored sample type -> float32 mono in [-1, 1] (channel mean)."""
    x = np.asarray(data)
    if x.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif x.dtype.kind == "i":
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    else:
        x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32)
    return x


def resample(x: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly); identity when rates match."""
    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly  # lazy: scipy.signal costs ~50 MB and ~0.8 s to import

    g = gcd(int(from_rate), int(to_rate))
    return resample_poly(x, to_rate // g, from_rate // g).astype(np.float32)


def check_finite(x: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{name}: audio has NaN or infinite samples")


def load_wav(path: str | os.PathLike, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A whole WAV as float32 mono at `rate`: for clips (training, predict)."""
    src_rate, data = read_wav(path)
    return prepare_clip(to_mono_float(data), src_rate, str(path), rate)


def prepare_clip(x: np.ndarray, src_rate: int, name: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A decoded mono clip -> float32 at `rate`, DC removed (a DC offset would hide the word
    from the energy trim). Every clip loader (WAV files, the Hugging Face copy) ends here."""
    x = np.asarray(x, dtype=np.float32)
    check_finite(x, name)
    x = x - np.float32(x.mean(dtype=np.float64))
    return resample(x, src_rate, rate)


def write_wav(path: str | os.PathLike, x: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """float [-1, 1] (clipped) or int16 -> 16-bit PCM WAV."""
    from scipy.io import wavfile

    x = np.asarray(x)
    if x.dtype != np.int16:
        x = np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    wavfile.write(path, rate, x)


def float_to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)


class DcBlock:
    """A stream's DC offset removed as it flows: the one-pole high-pass y[n] = x[n] - x[n-1] +
    r y[n-1], r = exp(-2 pi cutoff / rate), block after block with its state carried, so any
    blocking gives the one-shot output.

    Why: a file's offset is its mean, which `prepare_clip` subtracts, but a live stream has no
    mean to wait for, and a microphone's converter can add one. Every level test hears the input
    high-passed at 100 Hz (`digitd.vad`), but what the classifier and the microphone estimate are
    handed did not: a 0.02 offset fed as a microphone delivers it cost the unseen room streams
    (seeds 0-3) 13.48 -> 16.21% DER (docs/daemon.md, stop 55). At 5 Hz the filter is -0.03 dB at
    50 Hz and settles in ~30 ms; the first sample sets the state, so an offset present from the
    start makes no step. ~7 us a 30 ms frame."""

    BLOCK = 256  # longer input is filtered in pieces, which keeps r ** -k (below) near 1

    def __init__(self, cutoff_hz: float, rate: int = SAMPLE_RATE) -> None:
        self.r = float(np.exp(-2.0 * np.pi * cutoff_hz / rate)) if cutoff_hz > 0 else None
        self._x: float | None = None  # x[-1]; None until the first sample, which sets it
        self._y = 0.0  # y[-1]
        self._powers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The next block of the stream, filtered (float32 in, float32 out; a copy)."""
        if self.r is None or len(x) == 0:
            return x
        if len(x) > self.BLOCK:
            return np.concatenate([self(x[i : i + self.BLOCK]) for i in range(0, len(x), self.BLOCK)])
        n = len(x)
        if n not in self._powers:  # r ** k and r ** -k, once per block length
            k = np.arange(n, dtype=np.float64)
            self._powers[n] = (self.r**k, self.r**-k)
        up, down = self._powers[n]
        x64 = np.asarray(x, dtype=np.float64)
        u = np.empty(n)  # the first difference x[n] - x[n-1]
        u[0] = 0.0 if self._x is None else x64[0] - self._x
        np.subtract(x64[1:], x64[:-1], out=u[1:])
        # y[i] = sum_{j <= i} r ** (i - j) u[j] + r ** (i + 1) y[-1], as one cumulative sum
        y = up * np.cumsum(u * down) + (self.r * self._y) * up
        self._x, self._y = float(x64[-1]), float(y[-1])
        return y.astype(np.float32)


class StreamResampler:
    """Block-by-block polyphase resampling whose output equals one-shot `resample`.

    Keeps `ctx` input samples of past and future around each processed span (at least the
    filter's half length), so block edges add no clicks. Adds `ctx` samples of delay
    (10 ms for 44.1 kHz, 7.5 ms for 48 kHz).
    """

    def __init__(self, from_rate: int, to_rate: int = SAMPLE_RATE) -> None:
        g = gcd(int(from_rate), int(to_rate))
        self.up, self.down = to_rate // g, from_rate // g
        self.identity = self.up == self.down
        half = 10 * max(self.up, self.down) // self.up + 1  # resample_poly's filter half-length
        self.ctx = -(-half // self.down) * self.down
        self._buf = np.zeros(self.ctx, dtype=np.float32)  # past context starts as silence

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32)
        if self.identity:
            return block
        self._buf = np.concatenate([self._buf, block])
        return self._drain()

    def flush(self) -> np.ndarray:
        """Emit what is still held back, padding the future with silence."""
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        pending = len(self._buf) - self.ctx
        if pending <= 0:
            return np.zeros(0, dtype=np.float32)
        pad = (-pending) % self.down + self.ctx
        self._buf = np.concatenate([self._buf, np.zeros(pad, dtype=np.float32)])
        out = self._drain()
        n_out = -(-pending * self.up // self.down)
        return out[:n_out]

    def _drain(self) -> np.ndarray:
        k = (len(self._buf) - 2 * self.ctx) // self.down
        if k <= 0:
            return np.zeros(0, dtype=np.float32)
        from scipy.signal import resample_poly

        seg = self._buf[: 2 * self.ctx + k * self.down]
        y = resample_poly(seg, self.up, self.down)
        o = self.ctx * self.up // self.down
        out = y[o : o + k * self.up].astype(np.float32)
        self._buf = self._buf[k * self.down :]
        return out


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_DTYPES = {(_PCM, 8): np.dtype("u1"), (_PCM, 16): np.dtype("<i2"), (_PCM, 32): np.dtype("<i4"),
           (_FLOAT, 32): np.dtype("<f4"), (_FLOAT, 64): np.dtype("<f8")}


def _plain_layout(path: Path) -> tuple[int, np.dtype, tuple[int, ...], int] | None:
    """(rate, dtype, shape, data offset) of a plain, complete little-endian RIFF WAV (8/16/32-bit
    integer or 32/64-bit float PCM, extensible header allowed), read from its header alone;
    None for anything else (24-bit, RIFX, truncated, odd chunk sizes...), which `read_wav` handles;
    an AudioError for a plain layout whose sample rate no recording has.

    Why not scipy.io.wavfile for these: importing it costs `digitd run --input` ~18 MB of
    resident memory and ~0.13 s of cold start (scipy.io pulls in scipy.sparse and numpy.testing),
    and the samples are read with plain file reads anyway (`_read_chunks`)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
                return None
            fmt = None
            while True:
                ch = f.read(8)
                if len(ch) < 8:
                    return None
                cid, n = ch[:4], struct.unpack("<I", ch[4:])[0]
                if cid == b"fmt ":
                    body = f.read(n)
                    if len(body) < 16:
                        return None
                    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
                    if tag == _EXTENSIBLE and len(body) >= 26:
                        tag = struct.unpack("<H", body[24:26])[0]
                    fmt = (tag, channels, rate, align, bits)
                    if n % 2:
                        f.seek(1, 1)
                elif cid == b"data":
                    break
                else:
                    f.seek(n + n % 2, 1)
            offset = f.tell()
    except (OSError, struct.error):
        return None
    if fmt is None:
        return None
    tag, channels, rate, align, bits = fmt
    dtype = _DTYPES.get((tag, bits))
    if dtype is None or channels < 1 or align != channels * dtype.itemsize:
        return None
    if n == 0 or n % align or offset + n > size:
        return None
    _checked_rate(str(path), rate)  # a plain layout with a damaged rate is an error, not another format
    frames = n // align
    return rate, dtype, ((frames, channels) if channels > 1 else (frames,)), offset


def wav_layout(path: str | os.PathLike) -> tuple[int, np.dtype, tuple[int, ...], int] | tuple[int, np.ndarray | Decoded]:
    """What `iter_wav_blocks` needs to stream a file: (rate, dtype, shape, offset) from the
    header of a plain WAV, else (rate, data) as `read_wav(path, mmap=True)` finds it, or (rate,
    `Decoded`) for what libsndfile decodes; a bad file gets its one-line error here."""
    path = Path(path)
    _check_readable(path)
    plain = _plain_layout(path)
    return plain if plain is not None else _read(path, mmap=True)


def iter_wav_blocks(path: str | os.PathLike, block_s: float = 0.03, rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Stream an audio file as float32 mono blocks at `rate`, reading it piece by piece.

    The header gives where the samples start (`wav_layout`: parsed here for plain files, by
    scipy via a memory map otherwise); the samples are then read with plain file reads, so an
    hours-long file keeps neither its samples nor its mapped pages resident. What libsndfile
    decodes is decoded block by block; `path` "-" (STDIN) reads standard input as it arrives.
    """
    chunks: Iterator[np.ndarray]
    if str(path) == STDIN:
        decoded = _stdin()
        path, layout = decoded.name, (decoded.rate, decoded)  # the name: for check_finite's message
    else:
        layout = wav_layout(path)
    src_rate = int(layout[0])
    step = max(1, int(round(block_s * src_rate)))
    # Read, convert and check READ_S at a time, then hand out block_s pieces: per 30 ms block
    # a file read and four array operations cost a paced `run --input` ~0.3 % of a core.
    read = step * max(1, int(round(READ_S / block_s)))
    if len(layout) == 4:
        _, dtype, shape, offset = layout  # type: ignore[misc]
        chunks = _read_chunks(Path(path), dtype, shape, offset, read)
    else:
        data = layout[1]  # type: ignore[misc]
        if isinstance(data, Decoded):
            chunks = data.blocks(read)
        elif isinstance(data, np.memmap):
            dtype, shape, offset = data.dtype, data.shape, data.offset
            del data, layout
            chunks = _read_chunks(Path(path), dtype, shape, offset, read)
        else:  # 24-bit: scipy had to read it whole
            chunks = (data[i : i + read] for i in range(0, len(data), read))
    rs = StreamResampler(src_rate, rate)
    out_step = max(1, int(round(block_s * rate)))
    for chunk in chunks:
        x = to_mono_float(chunk)
        check_finite(x, str(path))
        out = rs.process(x)
        for i in range(0, len(out), out_step):
            yield out[i : i + out_step]
    tail = rs.flush()
    if len(tail):
        yield tail


READ_S = 0.5  # seconds of a file read at a time by iter_wav_blocks


def _read_chunks(path: Path, dtype: np.dtype, shape: tuple, offset: int, step: int) -> Iterator[np.ndarray]:
    frames = shape[0]
    width = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    with open(path, "rb") as f:
        f.seek(offset)
        for i in range(0, frames, step):
            n = min(step, frames - i)
            chunk = np.fromfile(f, dtype=dtype, count=n * width)
            if len(chunk) < n * width:
                raise AudioError(f"{path}: truncated WAV data (the file is shorter than its header says)")
            yield chunk.reshape((n,) + tuple(shape[1:])) if width > 1 else chunk
