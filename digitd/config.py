"""Configuration: plain dataclasses, read from TOML, overridable from the command line.

Lookup order: `--config PATH`, then `./config.toml`, then `~/.config/digitd/config.toml`,
else the built-in defaults (which match the shipped config.toml; a test checks that).
Unknown keys, wrong types and out-of-range values are rejected with the key's name and
what is allowed, as a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A config file or override that cannot be used, with a one-line reason."""


def comma_list(text: str) -> list[str]:
    """A knob holding a comma-separated list ("white, pink,,brown") -> its stripped, non-empty items."""
    return [v.strip() for v in text.split(",") if v.strip()]


def knob(default: Any, *, lo: float | None = None, hi: float | None = None, choices: tuple | None = None):
    """A dataclass field with its allowed range, checked by `validate`."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices})


@dataclass
class AudioConfig:
    device: str = knob("")  # index or name substring; "" = system default input
    capture_rate: int = knob(0, lo=0, hi=384000)  # 0 = 8000 Hz if the device takes it, else its default
    block_ms: int = knob(30, lo=5, hi=500)
    ring_seconds: float = knob(5.0, lo=0.1, hi=600.0)
    frame_ms: int = knob(30, choices=(10, 20, 30))
    reconnect_max_s: float = knob(5.0, lo=0.1, hi=300.0)
    dc_block_hz: float = knob(5.0, lo=0.0, hi=50.0)  # the stream's DC offset removed before everything (one-pole high-pass); 0 = off


@dataclass
class VadConfig:
    aggressiveness: int = knob(3, lo=0, hi=3)
    steady_aggressiveness: int = knob(1, lo=0, hi=3)  # the mode while the background is steady noise (endpoint: spread under 3 dB); = aggressiveness: off
    gain_target_db: float = knob(-27.0, lo=-80.0, hi=0.0)  # webrtcvad hears quiet input raised so the loud end of the last 20 s sits here
    max_gain_db: float = knob(40.0, lo=0.0, hi=60.0)  # at most this much (0 = off: webrtcvad hears the input as it comes)
    gain_after_ms: int = knob(150, lo=30, hi=60000)  # no gain until this much sound (not digital silence) has been heard
    highpass_hz: float = knob(100.0, lo=20.0, hi=400.0)  # what the VAD and every level test hear: the input high-passed here
    highpass_order: int = knob(2, choices=(2, 4, 6, 8))  # its Butterworth order


@dataclass
class EndpointConfig:
    preroll_ms: int = knob(90, lo=0, hi=1000)
    start_frames: int = knob(2, lo=1, hi=50)
    start_window: int = knob(3, lo=1, hi=50)
    hangover_ms: int = knob(120, lo=0, hi=3000)
    min_speech_ms: int = knob(90, lo=0, hi=5000)
    max_utterance_ms: int = knob(1250, lo=100, hi=30000)
    split_dips: bool = knob(True)
    valley_db: float = knob(18.0, lo=0.0, hi=90.0)  # with split_dips: >=90 ms pauses this far under the utterance peak split it at the end; 0 = off
    dip_db: float = knob(20.0, lo=3.0, hi=90.0)  # with split_dips: frames this far under the utterance peak count as a pause
    floor_snr_db: float = knob(4.0, lo=0.0, hi=60.0)  # frames must be this far over the noise floor to count as speech
    min_level_dbfs: float = knob(-55.0, lo=-120.0, hi=0.0)
    background_gate: bool = knob(True)  # speech must rise over the background's loud end (babble is speech, but quieter than the talker)
    background_s: float = knob(10.0, lo=1.0, hi=600.0)  # the background's loud end = 90th percentile of the levels outside utterances over this long
    speech_over_bg_db: float = knob(0.0, lo=-30.0, hi=30.0)  # with background_gate: frames this far over it count as speech
    word_over_bg_db: float = knob(3.0, lo=-30.0, hi=30.0)  # with background_gate: a word's loudest 90 ms must be this far over it
    cut_is_background: str = knob("unknown", choices=("off", "unknown", "crowd", "scarce"))  # with background_gate: when an utterance cut at max_utterance_ms is the room's (no digit runs that long) and its frame levels join the background's: unknown = while under 600 ms of background has been heard (talk from the first second); crowd = that, and in the first background_s a cut whose level moves like a crowd's (not under steady noise); scarce = while under half of background_s was heard outside utterances
    steady_floor_snr_db: float = knob(1.5, lo=0.0, hi=60.0)  # floor_snr_db while the background is steady noise
    steady_word_over_bg_db: float = knob(1.0, lo=-30.0, hi=30.0)  # word_over_bg_db while the background is steady noise
    onset_is_speech: str = knob("off", choices=("off", "fluent", "steady", "always"))  # with background_gate: the frames that opened an utterance leave the background's levels (a fluent talker's onsets lifted its loud end to his own level): fluent = under steady noise, when it opened within 300 ms of the last utterance's end; steady = under steady noise
    cold_steady_db: float = knob(0.0, lo=0.0, hi=20.0)  # until background_s of background has been heard: also steady when its median is within this of its 10th percentile (a talker from the first second fills its loud end); 0 = off
    late_ms: int = knob(600, lo=0, hi=30000)  # with background_gate, under background talk: frames this far into an utterance count as speech only late_over_bg_db over the background; 0 = off
    late_over_bg_db: float = knob(3.0, lo=-30.0, hi=30.0)  # that margin (babble runs utterances on past the word: end-of-speech latency)
    faint_words: str = knob("agreed", choices=("drop", "agreed"))  # with background_gate: a word under word_over_bg_db is dropped as background (drop), or handed on and kept only at the talker's level (classify.near_talker_db, faint_within_s) when the CNN and the embedding member agree on it (agreed: classify.agree_min)


@dataclass
class ClassifyConfig:
    model: str = knob("")  # path to a .npz model file; "" = the shipped default
    reject_threshold: float = knob(0.38, lo=0.0, hi=1.0)
    steady_reject_threshold: float = knob(0.3, lo=0.0, hi=1.0)  # reject_threshold under steady noise within 20 dB of a word near the talker's level (near_talker_db): the noise masks the word, true digits come out less sure
    min_voiced_ms: float = knob(45.0, lo=0.0, hi=1000.0)  # utterances without this much continuous pitch are rejected (coughs, claps); 0 = off
    steady_min_voiced_ms: float = knob(15.0, lo=0.0, hi=1000.0)  # min_voiced_ms under steady noise within 20 dB of the word (it masks the word's pitch); 0 = no pitch test there
    voiced_range_db: float = knob(12.0, lo=1.0, hi=80.0)  # that pitch counts only within this many dB of the utterance's loudest moment
    agree_min: float = knob(0.7, lo=0.0, hi=1.0)  # emit anyway when the CNN and the embedding member both name the digit with at least this (0 = off)
    agree_min_speech: float = knob(0.02, lo=0.0, hi=1.0)  # ...unless the digit detector's P(speech) is under this (a cough or click it is sure of)
    queue_size: int = knob(32, lo=1, hi=10000)
    split_min_ms: int = knob(400, lo=0, hi=30000)  # utterances this long are tried as run-together words (digitd/segment.py); 0 = off
    split_sure: float = knob(0.9, lo=0.0, hi=1.0)  # a cut whose two sides are both this confident is kept even when the whole was confident
    repeat_gap_ms: float = knob(10.0, lo=0.0, hi=1000.0)  # a digit starting less than this after the end of the same digit is that word's second half (rejected as split_word); 0 = off
    tail_under_db: float = knob(12.0, lo=0.0, hi=120.0)  # a digit whose loudest 10 ms is this far under the digit just emitted, starting less than tail_gap_ms after it, is that word's tail (rejected as split_word); 0 = off
    tail_gap_ms: float = knob(20.0, lo=0.0, hi=2000.0)  # that gap
    talk_under_db: float = knob(6.0, lo=0.0, hi=120.0)  # a word heard in background talk this far under the talker's recent digits needs talk_threshold (rejected as background_talk); 0 = off
    talk_threshold: float = knob(0.6, lo=0.0, hi=1.0)  # that confidence
    near_talker_db: float = knob(6.0, lo=0.0, hi=120.0)  # a word within this of the talker's recent digits is his: steady_reject_threshold under steady noise, and a faint word (endpoint.faint_words) the strong members agree on is kept; 0 = off
    faint_within_s: float = knob(10.0, lo=0.0, hi=86400.0)  # a faint word is kept only this soon after the talker's last emitted digit (talk in a quiet spell is the room's)
    talker_words: int = knob(3, lo=1, hi=100)  # the talker's level: the median of this many recent digits
    talker_memory_s: float = knob(60.0, lo=0.1, hi=86400.0)  # ...that ended less than this long ago
    context: str = knob("steady", choices=("off", "steady", "always"))  # classify the word with its pre-roll and hangover around it (as `predict` sees a clip): steady = unless the background is babble


@dataclass
class DenoiseConfig:
    steady: bool = knob(True)  # under steady noise close under the word, subtract the background's spectrum from it before it is classified (digitd/denoise.py)
    background_ms: int = knob(1000, lo=0, hi=30000)  # the background heard outside utterances that estimates the noise (the latest this-many ms)
    over: float = knob(1.5, lo=0.0, hi=10.0)  # subtract this many times the noise's power
    floor_db: float = knob(-5.0, lo=-60.0, hi=0.0)  # no bin is turned down further than this
    max_change_db: float = knob(1.0, lo=0.0, hi=60.0)  # only a noise that held still: the two halves of that background within this many dB per band (mean of 16 bands)


@dataclass
class EqualizeConfig:
    mic: bool = knob(True)  # undo the microphone's broad colouring on what the classifier hears, learned from the voiced words heard so far (digitd/equalize.py)
    min_speech_s: float = knob(2.0, lo=0.0, hi=600.0)  # no correction before this much speech was heard (voiced words' frames over the noise)
    memory_s: float = knob(60.0, lo=0.0, hi=36000.0)  # the estimate forgets with this time constant, in seconds of speech (0 = never): a new device is learned anew
    over_noise_db: float = knob(6.0, lo=0.0, hi=40.0)  # a word's frames this far over the noise before it are its speech
    max_boost_db: float = knob(12.0, lo=0.0, hi=30.0)  # the correction lifts no band more than this
    max_cut_db: float = knob(12.0, lo=0.0, hi=30.0)  # nor lowers one more than this
    where: str = knob("members", choices=("members", "stream"))  # who hears the correction: the members only, or the whole stream from the VAD on (one microphone: a laptop's, a phone's)
    deadband_db: float = knob(2.0, lo=0.0, hi=30.0)  # each band's correction comes this much closer to 0 dB, and none nearer than this: a flat microphone's estimate wanders 1-2 dB


@dataclass
class OutputConfig:
    mode: str = knob("auto", choices=("auto", "ui", "jsonl", "plain", "numbers"))
    transcript_len: int = knob(24, lo=1, hi=1000)


@dataclass
class GroupConfig:
    pause_ms: int = knob(700, lo=1, hi=60000)  # digits closer than this (end to next start) form one number
    length: int = knob(0, lo=0, hi=1000)  # close a number as soon as it has this many digits; 0 = off


@dataclass
class ServeConfig:
    address: str = knob("")  # unix:PATH or tcp:HOST:PORT, several separated by commas; "" = off
    allow_remote: bool = knob(False)  # allow tcp addresses that are not loopback
    client_buffer_kb: int = knob(64, lo=1, hi=65536)  # unsent bytes per client before it is dropped as stuck
    wait_clients: int = knob(0, lo=0, hi=1000)  # start the stream once this many clients are connected


@dataclass
class ExecConfig:
    command: str = knob("")  # run once per number, DIGITD_NUMBER in its environment; "" = off
    timeout_s: float = knob(10.0, lo=0.01, hi=3600.0)  # killed and reported after this long
    queue_size: int = knob(16, lo=1, hi=10000)  # numbers waiting for their command; more are dropped and reported


@dataclass
class RunConfig:
    speed: str = knob("1")  # file input pacing: "1" real time, "max" as fast as possible, or a factor


@dataclass
class BenchConfig:
    speed: str = knob("max")  # "max" = compute-bound, "1" = paced like live audio (or another factor)
    seed: int = knob(0, lo=0)
    seeds: str = knob("")  # room scenario: these stream seeds, one report pooled over them ("0-9", "0,3,5"); "" = `seed` alone
    digits: int = knob(120, lo=1, hi=100000)
    gap_min_s: float = knob(0.15, lo=0.0, hi=60.0)
    gap_max_s: float = knob(2.0, lo=0.0, hi=60.0)
    noise: str = knob("none", choices=("none", "white", "pink"))
    snr_db: float = knob(20.0, lo=-20.0, hi=80.0)
    level_min_db: float = knob(-20.0, lo=-80.0, hi=0.0)
    level_max_db: float = knob(-3.0, lo=-80.0, hi=0.0)
    scenario: str = knob("fsdd", choices=("fsdd", "room"))  # fsdd: the stream above; room: unseen speakers in rooms
    room_backgrounds: str = knob("none,noise,white,pink,brown,babble")  # comma list of none|noise|white|pink|brown|babble
    room_snrs_db: str = knob("20,10,5")  # comma list: each background at each SNR (vs the speech); none runs once
    room_words: int = knob(80, lo=1, hi=100000)  # spoken words per condition, digits and non-digit words
    room_nondigit_share: float = knob(0.167, lo=0.0, hi=0.9)  # of those words, the share that are not digits
    room_sound_share: float = knob(0.1, lo=0.0, hi=2.0)  # coughs, clicks, door knocks per spoken word
    room_espeak_share: float = knob(0.1, lo=0.0, hi=0.25)  # digits said by espeak-ng evaluation voices
    room_background_s: float = knob(30.0, lo=0.0, hi=3600.0)  # one stretch of background only per condition
    room_lead_s: float = knob(1.0, lo=0.1, hi=60.0)  # background before the first word (a file that starts on a word: 0.1, the clip's own edge)
    room_gap_min_s: float = knob(0.08, lo=0.0, hi=60.0)
    room_gap_max_s: float = knob(2.0, lo=0.0, hi=60.0)
    room_level_dbfs: float = knob(-30.0, lo=-80.0, hi=0.0)  # centre of the speech level (RMS of the word)
    room_level_step_db: float = knob(10.0, lo=0.0, hi=40.0)  # word-to-word level change up to +-this, within centre +-this
    room_babble_talkers: int = knob(4, lo=3, hi=32)
    room_voice_speed: float = knob(1.0, lo=0.5, hi=2.0)  # every spoken word played this much faster (tempo and pitch together): > 1 a quicker, higher voice, < 1 a slower, deeper one
    room_rt60_s: float = knob(0.0, lo=0.0, hi=3.0)  # > 0: every word and sound is heard through a room with this reverberation time; 0 = dry
    room_drr_db: float = knob(3.0, lo=-20.0, hi=40.0)  # with room_rt60_s: direct sound over reverberation (talker ~1 m from the microphone)
    room_dc_offset: float = knob(0.0, lo=-0.5, hi=0.5)  # a converter's DC offset (full scale = 1) in the stream, as a live microphone delivers it
    room_mic: str = knob("flat", choices=("flat", "phone", "laptop", "dull", "boomy", "random"))  # the microphone every stream is heard through (words and background alike); random = one drawn per stream
    room_speakers: str = knob("unseen", choices=("unseen", "train", "dev", "fit"))  # unseen: the judged split; train / dev: for tuning knobs; fit: training side without dev


@dataclass
class TrainConfig:
    data_dir: str = knob("")  # "" = $DIGITD_FSDD_DIR, else ../shared/fsdd/recordings
    classifier: str = knob("lr", choices=("lr", "svm", "ens"))
    extra_dir: str = knob("")  # extra {digit}_{speaker}_{n}.wav corpora, comma-separated (split by speaker); "" = none
    aug_copies: int = knob(0, lo=0, hi=50)
    aug_kinds: str = knob("noise,pad,gain,speed")  # effects augmented copies may get (comma list)
    synth: bool = knob(False)  # add espeak-ng digits from training-only voices
    clean_svm: bool = knob(False)  # with augmentation, add an SVM member fitted on clean rows only
    cnn: bool = knob(False)  # add the convolutional log-mel member (needs torch: the hf extra)
    cnn_epochs: int = knob(40, lo=1, hi=1000)
    cnn_copies: int = knob(10, lo=0, hi=100)  # augmented spectrograms per clip for the CNN
    cnn_gain: float = knob(8.0, lo=0.0, hi=100.0)  # CNN weight = cnn_base + cnn_gain * (1 - clean gate weight)
    cnn_base: float = knob(2.0, lo=0.0, hi=100.0)
    cnn_nets: int = knob(2, lo=1, hi=16)  # CNN copies trained from seeds seed, seed+1, ...; probabilities averaged
    cnn_noise: str = knob("")  # noise kinds of the CNN's copies, comma list of white|pink|brown|babble|recorded (real recordings from the negatives' noise folder); "" = the pooled members' white,pink,babble
    cnn_babble: str = knob("digits", choices=("digits", "words"))  # the CNN's babble: FSDD training digits, 5 talkers (v3-v8), or training-side non-digit words from --negatives, 3-6 talkers
    cnn_snr_db: str = knob("")  # SNRs of the CNN's noisy copies, comma list of dB; "" = the pooled members' 0,5,10,15,20,30
    corpora_dir: str = knob("")  # folder holding speech-commands-*/audiomnist-digits; "" = $DIGITD_SHARED_DIR, else ../shared
    embed: bool = knob(False)  # add the speech-embedding member (digits + "other" from real words and noise)
    negatives: str = knob("")  # non-digit word / noise folders for its "other" class, comma-separated (training speakers only)
    embed_c: float = knob(0.03, lo=1e-6, hi=1e6)  # its logistic regression's C
    embed_weight: float = knob(0.5, lo=0.0, hi=1.0)  # its share of the digit probabilities
    embed_head: bool = knob(False)  # with embed: score the member with a small conv head over its window embeddings (torch to train; digitd.embedhead)
    embed_head_copies: int = knob(6, lo=0, hi=50)  # augmented copies per clip (digits and non-digits) for that head
    embed_head_reverb: int = knob(0, lo=0, hi=50)  # more copies for it, each heard through a synthetic room first (RT60 0.2-0.9 s)
    embed_head_speed: int = knob(0, lo=0, hi=50)  # more copies for it, each played faster or slower first (speed_range)
    embed_head_low: int = knob(0, lo=0, hi=50)  # more copies for it, each under noise at embed_head_low_snr (always noisy)
    embed_head_low_snr: str = knob("-6,6")  # SNR range of those copies, "LO,HI" dB (word power over noise power)
    embed_head_low_kinds: str = knob("recorded,babble,white,pink")  # noises of those copies, comma list, drawn uniformly (repeat one to weight it)
    heard_streams: int = knob(0, lo=0, hi=1000)  # room streams (seeds x every bench.room_* condition) of training-side voices, cut and heard as the daemon hears them: their words join the sequence head's rows (train/heard.py); 0 = off
    embed_tune: int = knob(0, lo=0, hi=200)  # with embed_head: epochs of fine-tuning the speech embedding's upper layers together with the first head; the model gets its own front end file (train/embed_tune.py); 0 = off
    embed_tune_frozen: int = knob(7, lo=0, hi=19)  # with embed_tune: the first this-many of the embedding's 20 convolutions keep Google's weights
    embed_tune_heard: int = knob(2500, lo=0, hi=10_000_000)  # with embed_tune: heard words drawn per tuning epoch (each epoch also sees one copy of every clip)
    embed_head_nets: int = knob(1, lo=1, hi=20)  # sequence heads trained from different seeds (their own copies and start), probabilities averaged
    mic_copies: float = knob(0.0, lo=0.0, hi=1.0)  # this share of every member's copies heard through a random microphone (digitd.synth.mic_curve), noise and all
    denoise_copies: float = knob(0.0, lo=0.0, hi=1.0)  # this share of the copies under steady noise (white/pink/brown, <= 20 dB) heard through digitd.denoise, as the daemon hears such words
    cnn_speed: bool = knob(False)  # 30% of the CNN's copies played faster or slower (speed_range)
    speed_range: str = knob("0.85,1.15")  # speed factors of those copies, "LO,HI" (tempo and pitch together: a shorter or longer vocal tract, a quicker or slower talker)
    embed_noisy: int = knob(1, lo=0, hi=20)  # copies per digit clip with a real background recording at 5-20 dB
    hold_out_dev: bool = knob(False)  # leave the training side's dev slice (speaker hash 0.3-0.45) out: a model to tune classifier knobs for (bench.room_speakers = "dev")
    jobs: int = knob(2, lo=1, hi=256)
    dask: str = knob("")  # "" = local processes; "local" = a Dask LocalCluster of `jobs` workers here; else a scheduler address, tcp://HOST:PORT
    seed: int = knob(0, lo=0)


@dataclass
class UserConfig:
    name: str = knob("")  # the enrolled user whose profile run/predict/bench apply; "" = none
    dir: str = knob("")  # where profiles live; "" = $XDG_DATA_HOME/digitd/users, else ~/.local/share/digitd/users
    takes: int = knob(2, lo=1, hi=20)  # enroll: takes per digit
    seed: int = knob(-1, lo=-1)  # enroll: prompt order; -1 = a new random order each session
    pull: float = knob(1.0, lo=1e-4, hi=1e4)  # L2 pull of the adapted digit weights toward the base model's
    weight: float = knob(0.5, lo=0.0, hi=1.0)  # the adapted member's share of the digit average for an enrolled user
    min_peak_dbfs: float = knob(-40.0, lo=-120.0, hi=0.0)  # enroll: a take whose peak is under this is "too quiet"
    clipped_share: float = knob(0.002, lo=0.0, hi=1.0)  # enroll: a take with more samples than this at full scale is "clipped"
    mismatch_confidence: float = knob(0.8, lo=0.0, hi=1.0)  # enroll: a take heard as another digit this surely is asked again (kept if heard so twice)
    wait_s: float = knob(8.0, lo=0.5, hi=600.0)  # enroll, live: after this long without a word, a hint (is the microphone on?)


@dataclass
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)
    equalize: EqualizeConfig = field(default_factory=EqualizeConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    exec: ExecConfig = field(default_factory=ExecConfig)
    run: RunConfig = field(default_factory=RunConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    user: UserConfig = field(default_factory=UserConfig)


def _coerce(section: str, f: dataclasses.Field, value: Any) -> Any:
    key = f"{section}.{f.name}"
    typ = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str, "bool": bool}[f.type]
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):  # NaN passes every range check and would switch the knob off silently
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    elif typ is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # e.g. run.speed = 1
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        allowed = ", ".join(str(c) for c in meta["choices"])
        raise ConfigError(f"{key}: {value!r} is not allowed (choose one of {allowed})")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and value < lo or hi is not None and value > hi:
        rng = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        raise ConfigError(f"{key}: {value!r} is out of range (allowed {rng})")
    return value


# values a knob took before it changed type, read as what they meant then
_FORMER_VALUES: dict[tuple[str, str], dict[Any, Any]] = {
    ("endpoint", "cut_is_background"): {False: "off", True: "scarce"},  # a bool until stop 27
}


def apply(cfg: Config, data: dict[str, Any], origin: str = "config") -> Config:
    """Overlay a parsed TOML table onto `cfg`, checking every key, type and range."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    for sec_name, table in data.items():
        if sec_name not in sections:
            raise ConfigError(f"{origin}: unknown section [{sec_name}] (known: {', '.join(sections)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [{sec_name}] must be a table")
        sec = getattr(cfg, sec_name)
        fields = {f.name: f for f in dataclasses.fields(sec)}
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(f"{origin}: unknown key {sec_name}.{key} (known: {', '.join(fields)})")
            former = _FORMER_VALUES.get((sec_name, key), {})
            if isinstance(value, bool) and value in former:
                value = former[value]
            setattr(sec, key, _coerce(sec_name, fields[key], value))
    _check_cross(cfg)
    return cfg


def _check_cross(cfg: Config) -> None:
    if cfg.endpoint.start_frames > cfg.endpoint.start_window:
        raise ConfigError("endpoint.start_frames: must be <= endpoint.start_window")
    if cfg.bench.gap_min_s > cfg.bench.gap_max_s:
        raise ConfigError("bench.gap_min_s: must be <= bench.gap_max_s")
    if cfg.bench.room_gap_min_s > cfg.bench.room_gap_max_s:
        raise ConfigError("bench.room_gap_min_s: must be <= bench.room_gap_max_s")
    if cfg.serve.wait_clients and not cfg.serve.address.strip():
        raise ConfigError("serve.wait_clients: needs serve.address (--serve) to wait on")
    if cfg.bench.level_min_db > cfg.bench.level_max_db:
        raise ConfigError("bench.level_min_db: must be <= bench.level_max_db")
    try:  # known before the first number: refuse it now, not once per number
        shlex.split(cfg.exec.command)
    except ValueError as e:
        raise ConfigError(f"exec.command: cannot split {cfg.exec.command!r} into a program and its arguments ({e})") from None
    for key, speed in (("run.speed", cfg.run.speed), ("bench.speed", cfg.bench.speed)):
        if speed != "max":
            try:
                ok = float(speed) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"{key}: {speed!r} is not allowed (a positive factor such as 1, or max)")


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' -> (section, key, value); value parsed as TOML, else a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    path, raw = text.split("=", 1)
    section, key = path.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def default_paths() -> list[Path]:
    return [Path("config.toml"), Path.home() / ".config" / "digitd" / "config.toml"]


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Config from `path` (or the first default location that exists), then `overrides`."""
    cfg = Config()
    candidates = [Path(path)] if path else default_paths()
    for p in candidates:
        if p.is_file() or path:
            try:
                data = tomllib.loads(p.read_text())
            except FileNotFoundError:
                raise ConfigError(f"{p}: no such config file") from None
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"{p}: cannot read config ({e})") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{p}: invalid TOML ({e})") from None
            apply(cfg, data, origin=str(p))
            break
    for text in overrides or []:
        section, key, value = parse_override(text)
        apply(cfg, {section: {key: value}}, origin="--set")
    return cfg


def as_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def changed(old: Config, new: Config) -> list[str]:
    """'section.key' of every knob whose value differs (config reload)."""
    a, b = as_dict(old), as_dict(new)
    return [f"{sec}.{k}" for sec in a for k in a[sec] if a[sec][k] != b[sec][k]]
