"""WAV input of every common kind loads as the same 8 kHz audio; bad input fails in one line."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from digitd.audio import AudioError, StreamResampler, iter_wav_blocks, load_wav, read_wav, resample
from tests.wavkinds import DECODED_KINDS, GOOD_KINDS, make_bad_inputs, tone, write_kind


@pytest.mark.parametrize("name, rate, dtype, channels", GOOD_KINDS)
def test_every_common_kind_loads_as_the_same_8k_signal(tmp_path, name, rate, dtype, channels):
    x = tone(rate, seconds=0.5, freq=440.0)
    y = load_wav(write_kind(tmp_path / f"{name}.wav", rate, dtype, channels, x))
    ref = tone(8000, seconds=0.5, freq=440.0)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(ref)) <= 1
    n = min(len(y), len(ref))
    core = slice(200, n - 200)  # resampler edges aside
    tol = 0.02 if dtype != "uint8" else 0.03  # 8-bit quantization
    assert np.max(np.abs(y[core] - ref[core])) < tol


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox to write the codings")
@pytest.mark.parametrize("name, sox_args, rate, tol", DECODED_KINDS)
def test_other_codings_and_containers_load_as_the_same_signal(tmp_path, name, sox_args, rate, tol):
    """A mu-law or A-law telephone WAV, ADPCM, GSM, FLAC, Ogg, AIFF: decoded by libsndfile, whole
    (`load_wav`) and block by block (`iter_wav_blocks`, as `run --input` streams) alike, and close
    to the source they were written from."""
    src = write_kind(tmp_path / "src.wav", 8000, "int16", 1, tone(8000, seconds=0.5, freq=440.0) * 0.5)
    p = tmp_path / name
    subprocess.run(["sox", str(src), *sox_args, str(p)], check=True, capture_output=True)
    assert read_wav(p)[0] == rate
    whole = load_wav(p)
    streamed = np.concatenate(list(iter_wav_blocks(p)))
    ref = load_wav(src)
    n = min(len(whole), len(ref))
    assert abs(len(whole) - len(ref)) <= 512 and abs(len(streamed) - len(whole)) <= 1  # GSM pads whole frames
    core = slice(400, n - 400)  # resampler and codec edges aside
    assert np.max(np.abs(whole[core] - ref[core])) < tol
    streamed -= streamed.mean()  # load_wav takes the DC out; the stream leaves it to the VAD's high-pass
    assert np.max(np.abs(streamed[core] - whole[core])) < 1e-4


def test_mp3_is_decoded(tmp_path):
    """MP3 (libsndfile >= 1.1, which python-soundfile's wheels carry): written by libsndfile
    itself, since sox here has no MP3 encoder."""
    import soundfile

    x = tone(16000, seconds=0.5, freq=440.0) * 0.5
    p = tmp_path / "clip.mp3"
    soundfile.write(str(p), x, 16000)
    y = load_wav(p)
    ref = tone(8000, seconds=0.5, freq=440.0) * 0.5
    assert abs(len(y) - len(ref)) <= 1200  # the encoder's padding
    lag = int(np.argmax(np.correlate(y[:2000], ref[1000:1400], mode="valid"))) - 1000
    a, b = (y[lag:], ref) if lag >= 0 else (y, ref[-lag:])
    m = min(len(a), len(b)) - 400
    assert np.max(np.abs(a[400:m] - b[400:m])) < 0.1


@pytest.mark.parametrize("name, rate, dtype, channels", GOOD_KINDS)
def test_header_parse_agrees_with_scipy(tmp_path, name, rate, dtype, channels):
    """`digitd run --input` reads plain WAV headers itself (no scipy import): same rate, sample
    type, shape and data offset as scipy's memory map; 24-bit is left to scipy."""
    from digitd.audio import _plain_layout

    p = write_kind(tmp_path / f"{name}.wav", rate, dtype, channels)
    got = _plain_layout(p)
    if dtype == "int24":
        assert got is None
        return
    r, data = read_wav(p, mmap=True)
    assert got == (r, data.dtype, data.shape, data.offset)


def test_streamed_blocks_equal_whole_file_load(tmp_path):
    p = write_kind(tmp_path / "s.wav", 44100, "int16", 2, tone(44100, 2.0, 300.0))
    whole = resample(load_wav(p, 44100), 44100, 8000)
    streamed = np.concatenate(list(iter_wav_blocks(p, block_s=0.03)))
    assert len(streamed) == len(whole)
    assert np.max(np.abs(streamed - whole)) < 1e-4


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
@pytest.mark.parametrize("block", [1, 37, 480, 4096])
def test_stream_resampler_matches_one_shot(rate, block):
    x = np.random.default_rng(rate + block).standard_normal(rate).astype(np.float32)
    rs = StreamResampler(rate, 8000)
    out = np.concatenate([rs.process(x[i : i + block]) for i in range(0, len(x), block)] + [rs.flush()])
    ref = resample(x, rate, 8000)
    assert len(out) == len(ref)
    assert np.max(np.abs(out - ref)) < 1e-5


def test_dc_offset_and_clipping_are_handled(tmp_path):
    x = np.clip(tone(8000) * 4 + 0.3, -1, 1)  # clipped and offset
    y = load_wav(write_kind(tmp_path / "dc.wav", 8000, "float32", 1, x))
    assert abs(float(np.mean(y))) < 1e-3
    assert np.all(np.isfinite(y))


def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path):
    bad = make_bad_inputs(tmp_path)
    assert len(bad) >= 14
    for name, (path, phrase) in bad.items():
        for loader in (load_wav, lambda p: list(iter_wav_blocks(p))):
            with pytest.raises(AudioError) as e:
                loader(path)
            msg = str(e.value)
            assert "\n" not in msg, name
            assert str(path) in msg, name
            assert phrase in msg, f"{name}: {msg}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path):
    p = write_kind(tmp_path / "locked.wav", 8000, "int16")
    p.chmod(0)
    with pytest.raises(AudioError, match="permission denied"):
        read_wav(p)


def test_hours_long_file_is_streamed_not_loaded(tmp_path):
    """A 1-hour 8 kHz int16 file (57.6 MB) streams through memory-mapped reads."""
    import resource

    p = tmp_path / "long.wav"
    n = 8000 * 3600
    from scipy.io import wavfile

    wavfile.write(p, 8000, np.zeros(n, dtype=np.int16))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total = 0
    for b in iter_wav_blocks(p, block_s=0.5):
        total += len(b)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert total == n
    assert (after - before) * 1024 < 40e6  # far less than the file's 57.6 MB (+ float32 copy 115 MB)


def test_dc_block_removes_an_offset_block_by_block_and_passes_speech():
    """A live stream's DC offset is gone ~0.1 s in, whatever the blocking, and the speech band
    passes as it was (`audio.dc_block_hz`): the file loader's mean removal, for streams."""
    from digitd.audio import DcBlock

    t = np.arange(16000) / 8000
    speech = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)
    x = speech + np.float32(0.05)
    whole = DcBlock(5.0)(x)
    for block in (1, 37, 240, 5000):
        d = DcBlock(5.0)
        assert np.max(np.abs(np.concatenate([d(x[i : i + block]) for i in range(0, len(x), block)]) - whole)) < 1e-6
    assert abs(float(whole[0])) < 1e-7  # the first sample sets the state: an offset there from the start makes no step
    assert abs(float(np.mean(whole[800:]))) < 1e-3 < abs(float(np.mean(x[800:])))
    gain_db = 20 * np.log10(np.std(whole[8000:]) / np.std(speech[8000:]))
    assert abs(gain_db) < 0.05
    assert DcBlock(0.0)(x) is x  # 0 = off
