"""`digitd` command line: parses arguments, loads config, dispatches, turns errors into one line.

Each subcommand's work lives in its own module, imported only when that command runs, so
`digitd run` never imports the trainer and `digitd train` never opens the microphone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

# On 2 cores a multi-threaded BLAS makes small MFCC matrix products several times slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from digitd import __version__  # noqa: E402
from digitd.errors import DigitdError  # noqa: E402


def _user_args(p: argparse.ArgumentParser, what: str = "apply this enrolled user's profile (digitd enroll)") -> None:
    p.add_argument("--user", metavar="NAME", help=f"{what} [user.name]")
    p.add_argument("--users-dir", metavar="DIR", help="where profiles live [user.dir]")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="config file (default: ./config.toml, then ~/.config/digitd/config.toml)")
    p.add_argument(
        "--set", metavar="SECTION.KEY=VALUE", action="append", default=[], dest="overrides",
        help="override any config knob, e.g. --set vad.aggressiveness=2 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitd", description="Hands-free spoken-digit recognizer.")
    parser.add_argument("--version", action="version", version=f"digitd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="listen continuously and print digits as they are spoken")
    _common(p)
    src = p.add_mutually_exclusive_group()  # one source: a recording, the demo, or (neither) the microphone
    src.add_argument("--input", metavar="FILE", help="stream a recording (WAV, FLAC, Ogg, MP3...; - = standard input) through the pipeline instead of the microphone")
    src.add_argument("--demo", action="store_true", help="stream the bundled demo recording in real time")
    p.add_argument("--speed", help="file pacing: 1 = real time, max = as fast as possible, or a factor [run.speed]")
    p.add_argument("--device", help="input device index or name substring [audio.device]")
    p.add_argument("--model", help="model file [classify.model]")
    p.add_argument("--vad", type=int, dest="vad_aggressiveness", metavar="0-3", help="VAD aggressiveness [vad.aggressiveness]")
    p.add_argument("--hangover-ms", type=int, help="end-of-speech silence [endpoint.hangover_ms]")
    p.add_argument("--reject-threshold", type=float, help="confidence below which a digit is rejected [classify.reject_threshold]")
    _user_args(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--jsonl", action="store_const", const="jsonl", dest="output", help="JSON Lines events on stdout")
    out.add_argument("--ui", action="store_const", const="ui", dest="output", help="Rich live terminal UI")
    out.add_argument("--plain", action="store_const", const="plain", dest="output", help="plain text lines")
    out.add_argument("--numbers", action="store_const", const="numbers", dest="output",
                     help="one line per complete number, just its digits [output.mode=numbers]")
    p.add_argument("--serve", action="append", metavar="ADDRESS",
                   help="also publish events as JSON Lines at unix:/path.sock or tcp:127.0.0.1:PORT (repeatable) [serve.address]")
    p.add_argument("--serve-wait", type=int, dest="serve_wait", metavar="N",
                   help="start the stream once N clients are connected [serve.wait_clients]")
    p.add_argument("--exec", dest="exec_command", metavar="CMD",
                   help="run CMD once per number with DIGITD_NUMBER in its environment (no shell) [exec.command]")

    p = sub.add_parser("listen", help="print the events a `digitd run --serve` publishes (a client)")
    p.add_argument("address", metavar="ADDRESS", help="unix:/path/to.sock or tcp:HOST:PORT")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--numbers", action="store_true", help="one line per complete number, just its digits")
    fmt.add_argument("--plain", action="store_true", help="plain text lines instead of JSON Lines")

    p = sub.add_parser("devices", help="list audio input devices")
    _common(p)
    p.add_argument("--check", action="store_true", help="print nothing; exit 0 if an input device exists, else 1")

    p = sub.add_parser("convert-model", help="rewrite a trusted pickle-based model (.joblib, digitd < 0.2) as a data-only .npz")
    _common(p)
    p.add_argument("old", metavar="OLD.joblib", help="the bundle to convert: it is unpickled, which can run code; only one you trust")
    p.add_argument("--out", metavar="NEW.npz", help="where to write (default: OLD with .npz), its card beside it")

    p = sub.add_parser("predict", help="classify whole WAV clips; one JSON line per file")
    _common(p)
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    p.add_argument("--model", help="model file [classify.model]")
    _user_args(p)

    p = sub.add_parser("bench", help="latency / real-time-factor benchmark of the whole pipeline")
    _common(p)
    p.add_argument("--speed", dest="bench_speed", help="max (compute-bound) or 1 (paced like live audio) [bench.speed]")
    p.add_argument("--scenario", choices=("fsdd", "room"),
                   help="fsdd: FSDD test digits; room: unseen speakers, non-digit words, noises, backgrounds [bench.scenario]")
    p.add_argument("--input", metavar="WAV", help="benchmark this recorded stream instead of a generated one")
    p.add_argument("--truth", metavar="JSON", help="ground truth for --input: [{digit, start, end}, ...] or a room truth file")
    p.add_argument("--model", help="model file [classify.model]")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2", help="run once per value, e.g. vad.aggressiveness=1,2,3 (a knob of audio, vad, endpoint, denoise, equalize, classify or group: the streams and model are built once)")
    p.add_argument("--seeds", dest="bench_seeds", metavar="LIST",
                   help="room scenario: stream seeds pooled into one report, e.g. 0-9 or 0,3,5 [bench.seeds]")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--save-stream", metavar="DIR", help="write the generated stream WAV and its truth JSON here (room: one pair per condition)")
    _user_args(p)

    p = sub.add_parser("enroll", help="say the ten digits a few times; the model adapts to your voice")
    _common(p)
    _user_args(p, "whose profile to make or add takes to")
    p.add_argument("--takes", type=int, help="takes per digit [user.takes]")
    p.add_argument("--seed", type=int, dest="enroll_seed", metavar="N", help="prompt order (-1 = random) [user.seed]")
    p.add_argument("--device", help="input device index or name substring [audio.device]")
    p.add_argument("--input", metavar="WAV", help="a recording of the prompted session (its words answer the prompts in order)")
    p.add_argument("--from", dest="from_paths", nargs="+", metavar="DIR_OR_WAV",
                   help="whole {digit}_*.wav clips as takes, no prompting")
    p.add_argument("--model", help="the base model [classify.model]")
    p.add_argument("--list", action="store_true", help="list the profiles")
    p.add_argument("--remove", metavar="NAME", help="delete a profile and its takes")

    p = sub.add_parser("train", help="train a model from FSDD (and optional extra data)")
    _common(p)
    p.add_argument("--data", metavar="DIR", help="FSDD recordings folder [train.data_dir]")
    p.add_argument("--hf", action="store_true", help="load mteb/free-spoken-digit-dataset from the Hugging Face hub")
    p.add_argument("--classifier", choices=("lr", "svm", "ens"), help="lr, RBF svm, or ens = both, probabilities averaged [train.classifier]")
    p.add_argument("--extra", metavar="DIRS", help="extra {digit}_{speaker}_{n}.wav corpora, comma-separated; unseen speakers held out [train.extra_dir]")
    p.add_argument("--embed", action="store_true", default=None, help="add the speech-embedding member [train.embed]")
    p.add_argument("--negatives", metavar="DIRS", help="non-digit word / noise folders for its 'other' class [train.negatives]")
    p.add_argument("--aug", type=int, dest="aug_copies", metavar="N", help="augmented copies per training clip [train.aug_copies]")
    p.add_argument("--aug-kinds", dest="aug_kinds", metavar="LIST", help="effects for the copies: noise,pad,gain,speed,reverb [train.aug_kinds]")
    p.add_argument("--synth", action="store_true", default=None, help="also train on espeak-ng digits from training-only voices [train.synth]")
    p.add_argument("--clean-svm", dest="clean_svm", action="store_true", default=None,
                   help="with --aug: add an SVM member fitted on the clean clips only [train.clean_svm]")
    p.add_argument("--cnn", action="store_true", default=None,
                   help="add the convolutional log-mel member, heard in noise (needs torch) [train.cnn]")
    p.add_argument("--cnn-epochs", type=int, dest="cnn_epochs", metavar="N", help="CNN training epochs [train.cnn_epochs]")
    p.add_argument("--cnn-copies", type=int, dest="cnn_copies", metavar="N", help="augmented spectrograms per clip [train.cnn_copies]")
    p.add_argument("--cnn-gain", type=float, dest="cnn_gain", metavar="G", help="CNN weight in noise [train.cnn_gain]")
    p.add_argument("--cnn-base", type=float, dest="cnn_base", metavar="B", help="CNN weight on clean audio [train.cnn_base]")
    p.add_argument("--cnn-nets", type=int, dest="cnn_nets", metavar="N",
                   help="CNN copies from different seeds, averaged [train.cnn_nets]")
    p.add_argument("--cnn-noise", dest="cnn_noise", metavar="KINDS",
                   help="noise kinds of the CNN's copies: white,pink,brown,babble,recorded [train.cnn_noise]")
    p.add_argument("--cnn-babble", dest="cnn_babble", choices=("digits", "words"),
                   help="what the CNN's babble copies are made of: FSDD training digits or training-side non-digit words [train.cnn_babble]")
    p.add_argument("--cnn-snr", dest="cnn_snr_db", metavar="DB,DB", help="SNRs of the CNN's noisy copies [train.cnn_snr_db]")
    p.add_argument("--embed-head", action="store_true", default=None, dest="embed_head",
                   help="with --embed: a sequence head over the embedding windows scores that member [train.embed_head]")
    p.add_argument("--embed-head-reverb", type=int, dest="embed_head_reverb", metavar="N",
                   help="with --embed-head: N more copies per clip for it, heard through a synthetic room [train.embed_head_reverb]")
    p.add_argument("--embed-head-speed", type=int, dest="embed_head_speed", metavar="N",
                   help="with --embed-head: N more copies per clip for it, played faster or slower [train.embed_head_speed]")
    p.add_argument("--embed-head-low", type=int, dest="embed_head_low", metavar="N",
                   help="with --embed-head: N more copies per clip for it, under noise as loud as the word [train.embed_head_low]")
    p.add_argument("--embed-head-low-snr", dest="embed_head_low_snr", metavar="LO,HI",
                   help="SNR range (dB) of those copies [train.embed_head_low_snr]")
    p.add_argument("--embed-head-low-kinds", dest="embed_head_low_kinds", metavar="KINDS",
                   help="noises of those copies: recorded,babble,white,pink; repeat one to weight it [train.embed_head_low_kinds]")
    p.add_argument("--embed-head-nets", type=int, dest="embed_head_nets", metavar="N",
                   help="with --embed-head: N heads from seeds seed..seed+N-1, probabilities averaged [train.embed_head_nets]")
    p.add_argument("--embed-tune", type=int, dest="embed_tune", metavar="EPOCHS",
                   help="with --embed-head: fine-tune the speech embedding's upper layers with the first head for EPOCHS epochs [train.embed_tune]")
    p.add_argument("--embed-tune-frozen", type=int, dest="embed_tune_frozen", metavar="K",
                   help="with --embed-tune: the first K of the embedding's 20 convolutions keep Google's weights [train.embed_tune_frozen]")
    p.add_argument("--embed-tune-heard", type=int, dest="embed_tune_heard", metavar="N",
                   help="with --embed-tune: heard words drawn per tuning epoch [train.embed_tune_heard]")
    p.add_argument("--heard-streams", type=int, dest="heard_streams", metavar="N",
                   help="with --embed-head: also train it on the words of N room streams of training-side voices, cut as the daemon cuts them [train.heard_streams]")
    p.add_argument("--mic-copies", type=float, dest="mic_copies", metavar="P",
                   help="this share of every member's copies is heard through a random microphone [train.mic_copies]")
    p.add_argument("--denoise-copies", type=float, dest="denoise_copies", metavar="P",
                   help="this share of every member's copies under steady noise is heard through the daemon's denoiser [train.denoise_copies]")
    p.add_argument("--cnn-speed", action="store_true", default=None, dest="cnn_speed",
                   help="30%% of the CNN's copies played faster or slower [train.cnn_speed]")
    p.add_argument("--speed-range", dest="speed_range", metavar="LO,HI",
                   help="speed factors of the speed-changed copies [train.speed_range]")
    p.add_argument("--hold-out-dev", action="store_true", default=None, dest="hold_out_dev",
                   help="leave the training side's dev slice out (a model to tune classifier knobs on) [train.hold_out_dev]")
    p.add_argument("--name", default="default", help="model name: writes models/NAME.npz and NAME.json")
    p.add_argument("--out-dir", default=None, help="folder for the model (default: models/)")
    p.add_argument("--jobs", type=int, help="processes for features, LOSO folds, CNN seeds; with --dask local: workers [train.jobs]")
    p.add_argument("--dask", metavar="ADDRESS", help="run the parallel parts on a Dask cluster: tcp://HOST:PORT, or local [train.dask]")
    p.add_argument("--strict", action="store_true", help="abort on the first bad training file instead of skipping it")
    p.add_argument("--loso", action="store_true", help="also measure leave-one-speaker-out accuracy for the card")

    p = sub.add_parser("eval", help="evaluate a model on the official test split")
    _common(p)
    p.add_argument("--model", help="model file [classify.model]")
    p.add_argument("--data", metavar="DIR", help="FSDD recordings folder [train.data_dir]")
    p.add_argument("--hf", action="store_true", help="load the data from the Hugging Face hub")
    p.add_argument("--loso", action="store_true", help="leave-one-speaker-out accuracy (retrains per speaker)")
    p.add_argument("--negatives", metavar="DIRS", help="with --loso of a model with the embedding member: its 'other' folders [train.negatives]")
    p.add_argument("--loso-light", action="store_true",
                   help="with --loso: folds refit every member but the CNN (hours -> minutes; recorded as such)")
    p.add_argument("--extra", metavar="DIR", help="extra corpus: report accuracy on its held-out speakers [train.extra_dir]")
    p.add_argument("--unseen", action="store_true",
                   help="accuracy and open-set rejection on the speakers never trained on (digitd/corpora.py split)")
    p.add_argument("--corpora", metavar="DIR", help="folder of the extra corpora [train.corpora_dir]")
    p.add_argument("--conditions", action="store_true", help="accuracy under noise/gain/padding/speed conditions")
    p.add_argument("--open-set", action="store_true", help="rejection of noise, clicks, coughs and non-digit words")
    p.add_argument("--reject-threshold", type=float, help="confidence below which --open-set counts a rejection [classify.reject_threshold]")
    p.add_argument("--espeak", action="store_true", help="accuracy on espeak-ng digits (unseen synthetic voices)")
    p.add_argument("--plots", metavar="DIR", help="write confusion-matrix / accuracy-vs-SNR PNGs here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--record", action="store_true",
                   help="also write these results (and this command) into the model card's \"eval\" section")
    p.add_argument("--jobs", type=int, help="processes for features, LOSO folds, CNN seeds; with --dask local: workers [train.jobs]")
    p.add_argument("--dask", metavar="ADDRESS", help="run LOSO folds and features on a Dask cluster: tcp://HOST:PORT, or local [train.dask]")
    p.add_argument("--strict", action="store_true", help="abort on the first bad file instead of skipping it")
    return parser


# flag attribute -> config "section.key" it overrides
FLAG_KNOBS = {
    "speed": "run.speed",
    "bench_speed": "bench.speed",
    "scenario": "bench.scenario",
    "bench_seeds": "bench.seeds",
    "device": "audio.device",
    "model": "classify.model",
    "vad_aggressiveness": "vad.aggressiveness",
    "hangover_ms": "endpoint.hangover_ms",
    "reject_threshold": "classify.reject_threshold",
    "output": "output.mode",
    "serve": "serve.address",
    "serve_wait": "serve.wait_clients",
    "exec_command": "exec.command",
    "data": "train.data_dir",
    "classifier": "train.classifier",
    "extra": "train.extra_dir",
    "aug_copies": "train.aug_copies",
    "aug_kinds": "train.aug_kinds",
    "synth": "train.synth",
    "clean_svm": "train.clean_svm",
    "cnn": "train.cnn",
    "cnn_epochs": "train.cnn_epochs",
    "cnn_copies": "train.cnn_copies",
    "cnn_gain": "train.cnn_gain",
    "cnn_base": "train.cnn_base",
    "cnn_nets": "train.cnn_nets",
    "cnn_noise": "train.cnn_noise",
    "cnn_snr_db": "train.cnn_snr_db",
    "cnn_babble": "train.cnn_babble",
    "hold_out_dev": "train.hold_out_dev",
    "embed_head": "train.embed_head",
    "embed_head_reverb": "train.embed_head_reverb",
    "embed_head_speed": "train.embed_head_speed",
    "embed_head_low": "train.embed_head_low",
    "embed_head_low_snr": "train.embed_head_low_snr",
    "embed_head_low_kinds": "train.embed_head_low_kinds",
    "embed_head_nets": "train.embed_head_nets",
    "embed_tune": "train.embed_tune",
    "embed_tune_frozen": "train.embed_tune_frozen",
    "embed_tune_heard": "train.embed_tune_heard",
    "denoise_copies": "train.denoise_copies",
    "mic_copies": "train.mic_copies",
    "heard_streams": "train.heard_streams",
    "cnn_speed": "train.cnn_speed",
    "speed_range": "train.speed_range",
    "jobs": "train.jobs",
    "dask": "train.dask",
    "embed": "train.embed",
    "corpora": "train.corpora_dir",
    "negatives": "train.negatives",
    "user": "user.name",
    "users_dir": "user.dir",
    "takes": "user.takes",
    "enroll_seed": "user.seed",
}


def load_config(args: argparse.Namespace):
    """Config file, then --set overrides, then the named flags (most specific wins)."""
    from digitd import config

    overrides = list(getattr(args, "overrides", []))
    for attr, knob in FLAG_KNOBS.items():
        value = getattr(args, attr, None)
        if value is not None:
            if isinstance(value, list):  # repeatable flags (--serve)
                value = ",".join(value)
            section, key = knob.split(".")
            config_value = value if not isinstance(value, str) else value
            overrides.append(f"{section}.{key}={_toml_literal(config_value)}")
    return config.load(args.config, overrides)


def _toml_literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "listen":  # a client: no config
        from digitd.listen import listen_command
        return listen_command(args)
    cfg = load_config(args)
    if args.command == "run":
        from digitd.daemon import run_command
        return run_command(args, cfg, reload=lambda: load_config(args))
    if args.command == "devices":
        from digitd.capture import devices_command
        return devices_command(args, cfg)
    if args.command == "convert-model":
        from digitd.model import convert_pickle_model

        out = convert_pickle_model(args.old, args.out)
        print(f"wrote {out} and {out.with_suffix('.json').name}")
        return 0
    if args.command == "predict":
        from digitd.predict import predict_command
        return predict_command(args, cfg)
    if args.command == "bench":
        from digitd.bench import bench_command
        return bench_command(args, cfg)
    if args.command == "enroll":
        from digitd.enroll import enroll_command
        return enroll_command(args, cfg)
    if args.command in ("train", "eval"):
        try:
            from train.cli import eval_command, train_command
        except ImportError as e:
            raise DigitdError(f"the trainer is not installed ({e}); install digitd from a source checkout") from None
        return (train_command if args.command == "train" else eval_command)(args, cfg)
    raise DigitdError(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    from digitd.audio import AudioError
    from digitd.config import ConfigError
    from digitd.model import ModelError
    from digitd.serve import ServeError

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    # A closed stdout (`digitd run --jsonl | head -1`) ends the program quietly.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return dispatch(args)
    except (DigitdError, AudioError, ConfigError, ModelError, ServeError) as e:
        print(f"digitd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
