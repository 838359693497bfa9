"""What the classifier hears of each utterance, and the front end that cuts them from a recording.

One place decides it, so that the daemon (`pipeline.py`) and the trainer (`train/heard.py`, which
teaches the members words exactly as the daemon hands them over) cannot drift apart:
- `denoised`: under steady noise close under the word, that noise subtracted (`denoise.steady`);
- `heard`: the word with its pre-roll and hangover, or the trimmed word (`classify.context`);
- `utterances`: VAD + endpointer over a whole recording, as the live path runs them frame by frame.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from digitd.audio import DcBlock, float_to_int16
from digitd.config import Config, DenoiseConfig
from digitd.denoise import noise_psd, suppress
from digitd.endpoint import Endpointer, Utterance
from digitd.vad import Vad


def denoised(utt: Utterance, d: DenoiseConfig) -> Utterance:
    """The word with the steady noise around it subtracted (digitd/denoise.py), else as it came:
    talk in the background, a quiet room, or too little background heard yet."""
    psd = noise_psd(utt.background, d.max_change_db) if d.steady and utt.noise_around else None
    if psd is None:
        return utt
    if utt.context is None:
        return replace(utt, audio=suppress(utt.audio, psd, d.over, d.floor_db))
    context = suppress(utt.context, psd, d.over, d.floor_db)  # the word is a slice of it: one pass
    return replace(utt, audio=context[utt.context_offset : utt.context_offset + len(utt.audio)], context=context)


def heard(utt: Utterance, context: str) -> tuple[np.ndarray, bool]:
    """(audio, is it the trimmed word?) of an already `denoised` utterance: with `context`
    "always" (or "steady" without talk around the word) the word with its pre-roll and hangover,
    untrimmed, as `predict` hears a clip; else the trimmed word."""
    if utt.context is not None and (context == "always" or (context == "steady" and not utt.talk_around)):
        return utt.context, False
    return utt.audio, True


def front_end(cfg: Config) -> tuple[DcBlock, Vad, Endpointer]:
    """The DC blocker every frame passes first, the VAD and the endpointer as `cfg` sets them
    up: the live pipeline's and `utterances`'."""
    vad = Vad(cfg.vad.aggressiveness, cfg.audio.frame_ms, steady_aggressiveness=cfg.vad.steady_aggressiveness,
              gain_target_db=cfg.vad.gain_target_db, max_gain_db=cfg.vad.max_gain_db,
              highpass_hz=cfg.vad.highpass_hz, highpass_order=cfg.vad.highpass_order, gain_after_ms=cfg.vad.gain_after_ms)
    return (DcBlock(cfg.audio.dc_block_hz), vad,
            Endpointer(cfg.endpoint, cfg.audio.frame_ms, keep_background_ms=cfg.denoise.background_ms))


def utterances(audio: np.ndarray, cfg: Config) -> list[Utterance]:
    """Every utterance the live path would cut from `audio` (float32 at 8 kHz), in order, with
    nothing lost: the same VAD and endpointer, frame by frame, flushed at the end. Faint words
    (endpoint.faint_words) are left out: the gate's background, which the live path keeps only on
    the talker's level and the members' agreement. The trainer's heard words are what the gate
    passes, as every shipped model learned them, cut under `cfg` (v13's command pins the VAD's
    gain ceiling it was trained with: README)."""
    dc, vad, ep = front_end(cfg)
    n = vad.frame_len
    x = np.asarray(audio, dtype=np.float32)
    out: list[Utterance] = []
    for i in range(len(x) // n):
        frame = dc(x[i * n : (i + 1) * n])  # frame by frame, as the pipeline blocks it: the same samples
        out += ep.push(frame, vad(float_to_int16(frame)))
    return [u for u in out + ep.flush() if not u.faint]
