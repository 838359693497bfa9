"""`digitd train` and `digitd eval`."""

from __future__ import annotations

import argparse
import functools
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from digitd.config import comma_list
from digitd.errors import DigitdError
from digitd.features import DEFAULT_PARAMS, FEATURE_VERSION
from digitd.model import SUFFIX, DigitModel, card_path, default_model_path, load_model, models_dirs, read_card, save_model, write_card
from dataclasses import replace

from train.augment import ALL_NOISE_KINDS, AugmentSpec, make_babble, talker_banks
from train.embed_head import KINDS as HEAD_KINDS
from train.data import DataError, Record, default_data_dir, fingerprint, load_extra, load_folder, load_hf
from train.metrics import confusion_table, plot_confusion, summarize
from train.cnn import fit_member
from train.trainer import Recipe, _clean_mask, _corrupt_mask, extract_all, fit, fit_detector, loso, oof_confidence, stack

GARBAGE_TRAIN = 1500  # synthetic non-digit clips for the speech detector (fewer for tiny data sets)
REJECT_QUANTILE = 0.015  # reject threshold = this quantile of out-of-fold true-digit confidence


def _console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr)


def _stepper(err: Any, t0: float) -> Callable[[str], None]:
    """Prints a training stage's message after the time since the start ([h:mm:ss]): where a
    recipe of hours spends them, so the next one can be planned."""

    def step(msg: str) -> None:
        m, s = divmod(int(time.perf_counter() - t0), 60)
        err.print(f"[{m // 60}:{m % 60:02d}:{s:02d}] {msg}")

    return step


def load_records(args: argparse.Namespace, cfg: Any) -> tuple[list[Record], str]:
    """FSDD records (folder or --hf) plus the --extra corpus; skipped files listed on stderr."""
    bad: list[str] = []
    try:
        if getattr(args, "hf", False):
            records, source = load_hf(), "Hugging Face mteb/free-spoken-digit-dataset"
        else:
            folder = default_data_dir(cfg.train.data_dir)
            records, bad = load_folder(folder, strict=getattr(args, "strict", False))
            source = f"FSDD folder {folder}"
        for folder in comma_list(cfg.train.extra_dir):
            extra, bad2 = load_extra(folder, strict=getattr(args, "strict", False), hold_out_dev=cfg.train.hold_out_dev)
            records, bad = records + extra, bad + bad2
            source += f" + extra {folder}"
    except DataError as e:
        raise DigitdError(str(e)) from None
    for line in bad:
        print(f"digitd: skipped {line}", file=sys.stderr)
    return records, source


def recipe_from(cfg: Any) -> Recipe:
    t = cfg.train
    kinds = kind_list("train.aug_kinds", t.aug_kinds, ("noise", "pad", "gain", "speed", "reverb"))
    noise = kind_list("train.cnn_noise", t.cnn_noise, ALL_NOISE_KINDS)
    try:
        snrs = [float(v) for v in comma_list(t.cnn_snr_db)]
    except ValueError:
        raise DigitdError(f"train.cnn_snr_db: {t.cnn_snr_db!r} is not a comma list of numbers") from None
    speed = speed_range(t.speed_range)
    low = snr_range(t.embed_head_low_snr)
    low_kinds = kind_list("train.embed_head_low_kinds", t.embed_head_low_kinds, HEAD_KINDS, empty_ok=False)
    return Recipe(classifier=t.classifier, augment=AugmentSpec(copies=t.aug_copies, kinds=kinds, denoise_prob=t.denoise_copies,
                                                                   mic_prob=t.mic_copies),
                  synth=t.synth,
                  clean_svm=t.clean_svm, cnn=t.cnn, cnn_epochs=t.cnn_epochs, cnn_copies=t.cnn_copies,
                  cnn_gain=t.cnn_gain, cnn_base=t.cnn_base, cnn_nets=t.cnn_nets,
                  cnn_noise=",".join(noise), cnn_snr_db=",".join(f"{s:g}" for s in snrs), cnn_babble=t.cnn_babble, hold_out_dev=t.hold_out_dev,
                  embed=t.embed, embed_c=t.embed_c, embed_head=t.embed_head, embed_head_copies=t.embed_head_copies,
                  embed_head_reverb=t.embed_head_reverb, embed_head_speed=t.embed_head_speed, cnn_speed=t.cnn_speed,
                  speed_range=",".join(f"{v:g}" for v in speed), embed_head_low=t.embed_head_low,
                  embed_head_low_snr=",".join(f"{v:g}" for v in low), embed_head_low_kinds=",".join(low_kinds),
                  embed_head_nets=t.embed_head_nets, heard_streams=t.heard_streams,
                  embed_tune=t.embed_tune, embed_tune_frozen=t.embed_tune_frozen, embed_tune_heard=t.embed_tune_heard,
                  embed_weight=t.embed_weight, embed_noisy=t.embed_noisy, seed=t.seed, jobs=t.jobs)


def kind_list(knob: str, text: str, allowed: Sequence[str], *, empty_ok: bool = True) -> list[str]:
    """A comma-list knob of names -> the list, or a one-line error naming it and what it takes."""
    names = comma_list(text)
    bad = sorted(set(names) - set(allowed))
    if bad or not (names or empty_ok):
        raise DigitdError(f"{knob}: {f'unknown {bad}' if bad else 'empty'} (choose from {', '.join(allowed)})")
    return names


def lo_hi(knob: str, text: str, least: float, most: float, example: str) -> tuple[float, float]:
    """A "LO,HI" knob -> (lo, hi) with least <= lo <= hi <= most, or a one-line error naming it."""
    try:
        lo, hi = (float(v) for v in comma_list(text))
    except ValueError:
        raise DigitdError(f"{knob}: {text!r} is not LO,HI (e.g. {example})") from None
    if not least <= lo <= hi <= most:
        raise DigitdError(f"{knob}: {text!r}: need {least:g} <= LO <= HI <= {most:g}")
    return lo, hi


def speed_range(text: str) -> tuple[float, float]:
    """train.speed_range: speed factors, 0.5 <= lo <= hi <= 2."""
    return lo_hi("train.speed_range", text, 0.5, 2.0, "0.85,1.15")


def snr_range(text: str) -> tuple[float, float]:
    """train.embed_head_low_snr: dB, -30 <= lo <= hi <= 40."""
    return lo_hi("train.embed_head_low_snr", text, -30.0, 40.0, "-6,6")


def cnn_augment(recipe: Recipe) -> AugmentSpec:
    """The CNN's augmentation: the pooled members' effects, its own noise kinds, SNRs and speed changes if set."""
    spec = recipe.augment
    if recipe.cnn_speed:
        spec = replace(spec, speed=list(speed_range(recipe.speed_range)))
    if recipe.cnn_noise:
        spec = replace(spec, noise_kinds=comma_list(recipe.cnn_noise))
    if recipe.cnn_snr_db:
        spec = replace(spec, snr_db=[float(v) for v in comma_list(recipe.cnn_snr_db)])
    return spec


def recorded_bank(recipe: Recipe, cfg: Any) -> np.ndarray | None:
    """Real background recordings for the CNN's "recorded" noise kind: the training side of the
    --negatives noise folder (never an unseen clip), or None when the kind is not asked for."""
    if "recorded" not in comma_list(recipe.cnn_noise):
        return None
    from train.embed import negative_records, noise_bank

    bank = noise_bank(negative_records(comma_list(cfg.train.negatives), cfg.train.hold_out_dev), seconds=600.0, seed=recipe.seed)
    if len(bank) < 8000 * 3:
        raise DigitdError("train.cnn_noise: 'recorded' needs real background recordings: "
                          "--negatives with the speech-commands-noise folder")
    return bank


def babble_word_records(cfg: Any) -> list[Record]:
    """The training-side non-digit words of --negatives (no noise clips; no dev slice with --hold-out-dev)."""
    from train.embed import negative_records

    return [r for r in negative_records(comma_list(cfg.train.negatives), cfg.train.hold_out_dev) if not r.speaker.startswith("noise")]


def cnn_babble_bank(recipe: Recipe, cfg: Any, babble: np.ndarray | None) -> np.ndarray | None:
    """The CNN's babble: the pooled members' bank (FSDD training digits), or with cnn_babble
    "words" 20 s each of 3, 4, 5 and 6 talkers of training-side non-digit words (--negatives):
    background talk in a room is rarely other digits, and rarely six men."""
    if recipe.cnn_babble != "words":
        return babble
    words = babble_word_records(cfg)
    if len(words) < 20:
        raise DigitdError("train.cnn_babble = words needs non-digit words: --negatives with the speech-commands-words folder")
    return np.concatenate(talker_banks(words, recipe.seed, 20.0, most=600))


def synth_records(recipe: Recipe) -> list[Record]:
    """espeak-ng digits from training-only voices when the recipe asks for them (cached)."""
    if not recipe.synth:
        return []
    from train.synth import espeak_available, training_digits

    if not espeak_available():
        raise DigitdError("--synth needs espeak-ng (apt install espeak-ng)")
    try:
        return training_digits(Path(tempfile.gettempdir()) / "digitd-espeak-train", recipe.seed, recipe.jobs)
    except DataError as e:
        raise DigitdError(str(e)) from None


def _lib_versions() -> dict[str, str]:
    import joblib
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "joblib": joblib.__version__}


def _command(args: argparse.Namespace) -> str:
    argv = getattr(args, "argv", None)
    return "digitd " + shlex.join(sys.argv[1:] if argv is None else argv)


def babble_bank(records: list[Record], seed: int, seconds: float = 20.0) -> np.ndarray:
    """Babble from FSDD TRAIN-split clips only (never the test takes)."""
    rng = np.random.default_rng(seed)
    pool = [r for r in records if r.split == "train"]
    pick = rng.choice(len(pool), size=min(200, len(pool)), replace=False)
    return make_babble([pool[i].load() for i in pick], seconds, rng)


def garbage_features(records: list[Record], n: int, seed: int, jobs: int) -> np.ndarray:
    """Features of synthetic non-digit sounds (noise, clicks, coughs, hum, reversed training speech)."""
    from train.garbage import garbage_clips

    rng = np.random.default_rng([seed, 7])
    pool = [r for r in records if r.split in ("train", "extra")]
    speech = [pool[i].load() for i in rng.choice(len(pool), size=min(300, len(pool)), replace=False)]
    clips = garbage_clips(n, rng, speech)
    recs = [Record("garbage", kind, i, "garbage", audio=w.astype(np.float32)) for i, (kind, w) in enumerate(clips)]
    feats = extract_all(recs, DEFAULT_PARAMS, jobs=jobs, label="garbage features")
    return np.asarray([f[0] for f in feats])


def detector_synth_features(jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """espeak-ng non-digit words (negatives) and digits (positives) from detector-only voices,
    cached in the temp dir; empty arrays when espeak-ng is missing (then noise-only garbage)."""
    from train.synth import detector_clips, espeak_available

    if not espeak_available():
        print("digitd: espeak-ng not found; the speech detector learns noise, clicks and reversed speech only", file=sys.stderr)
        return np.zeros((0, DEFAULT_PARAMS.dim), np.float32), np.zeros((0, DEFAULT_PARAMS.dim), np.float32)
    words, digits = detector_clips(Path(tempfile.gettempdir()) / "digitd-espeak-detector")
    recs = [Record("x", "espeak", i, "garbage", str(p)) for i, p in enumerate(words + digits)]
    feats = np.asarray([f[0] for f in extract_all(recs, DEFAULT_PARAMS, jobs=jobs, label="espeak detector clips")])
    return feats[: len(words)], feats[len(words):]


def _require_torch() -> None:
    """--cnn trains with torch (the hf extra): say so in one line, before minutes of features."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise DigitdError("--cnn needs torch: pip install '.[hf]' (the daemon itself never needs it)") from None


def embed_loso_join(feat_recs: list[Record], recipe: Recipe, cfg: Any):
    """LOSO with the embedding member: its features once, refitted per fold on the fold's
    training records plus the negatives (whose speakers are never FSDD's)."""
    from digitd.model import join_embedding
    from train.embed import embed_features, loso_proba, negative_records

    negs = negative_records(comma_list(cfg.train.negatives), cfg.train.hold_out_dev)
    if not negs:
        raise DigitdError("LOSO of a model with the embedding member needs its negatives (--negatives DIRS)")
    if recipe.embed_head:
        _console().print("digitd: note: LOSO refits the embedding member's logistic regression per fold, not its sequence head")
    recs = list(feat_recs) + negs
    feats = embed_features(recs, noisy=recipe.embed_noisy, seed=recipe.seed, jobs=recipe.jobs)
    neg_idx = np.arange(len(feat_recs), len(recs))
    classes = sorted({r.label for r in feat_recs})  # the order of the fold estimators' classes_

    def join(tr: np.ndarray, te: np.ndarray, probs: np.ndarray) -> np.ndarray:
        pe = loso_proba(feats, recs, np.concatenate([tr, neg_idx]), te, classes, recipe.embed_c)
        return join_embedding(probs, pe, recipe.embed_weight, 1.0)

    return join


def _cnn_spectrograms(recs: list[Record], recipe: Recipe, babble: np.ndarray | None, cfg: Any, copies: int | None = None):
    """Spectrogram versions for the CNN member (the clean one first)."""
    from train.cnn import spectrograms_all

    return spectrograms_all(recs, cnn_augment(recipe), recipe.cnn_copies if copies is None else copies, seed=recipe.seed,
                            babble=cnn_babble_bank(recipe, cfg, babble), jobs=recipe.jobs, recorded=recorded_bank(recipe, cfg))


def on_cluster(command: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace, Any], int]:
    """Run `command` with its parallel parts where train.dask says (local processes by default,
    else a Dask cluster), and say afterwards which workers ran them."""

    @functools.wraps(command)
    def run(args: argparse.Namespace, cfg: Any) -> int:
        from train import parallel

        err = _console()
        with parallel.backend(cfg.train.dask, workers=cfg.train.jobs) as where:
            if cfg.train.dask:
                err.print(f"parallel parts on the {where}")
            parallel.clear_ran_on()
            t0 = time.perf_counter()
            status = command(args, cfg)
            if cfg.train.dask:
                err.print(parallel.summary())
                err.print(f"{args.command} took {time.perf_counter() - t0:.1f} s on the cluster")
        return status

    return run


@on_cluster
def train_command(args: argparse.Namespace, cfg: Any) -> int:
    t0 = time.perf_counter()
    err = _console()
    step = _stepper(err, t0)
    records, source = load_records(args, cfg)
    recipe = recipe_from(cfg)
    if recipe.cnn:
        _require_torch()
    if recipe.heard_streams:
        if not (recipe.embed and recipe.embed_head):
            raise DigitdError("--heard-streams trains the sequence head: it needs --embed --embed-head")
        from train.heard import check_heard

        check_heard(cfg, hold_out_dev=recipe.hold_out_dev, root=cfg.train.corpora_dir or None)
    if recipe.embed_tune and not (recipe.embed and recipe.embed_head):
        raise DigitdError("--embed-tune tunes the speech embedding with its sequence head: it needs --embed --embed-head")
    if recipe.clean_svm and recipe.augment.copies == 0:
        err.print("digitd: note: --clean-svm adds nothing without --aug N (every row is clean already)")
    synth = synth_records(recipe)
    if synth:
        records = records + synth
        source += f" + {len(synth)} espeak-ng digits ({len({r.speaker for r in synth})} training-only voices)"
    role = [r for r in records if r.split in ("train", "extra", "synth")]
    test_recs = [r for r in records if r.split == "test"]
    if not any(r.split == "train" for r in role):
        raise DigitdError("no training-split records (FSDD takes 5-49) found")
    want_loso = bool(getattr(args, "loso", False))
    babble = babble_bank(records, recipe.seed) if recipe.augment.copies or recipe.cnn else None
    # LOSO needs augmented features for every FSDD record too; otherwise only the training roles.
    feat_recs = [r for r in records if r.split in ("train", "extra", "synth", "test")] if want_loso else role
    feats = extract_all(feat_recs, DEFAULT_PARAMS, jobs=recipe.jobs, spec=recipe.augment, seed=recipe.seed, babble=babble)
    by_name = {r.name: f for r, f in zip(feat_recs, feats)}
    tr_feats = [by_name[r.name] for r in role]
    X, y, g = stack(tr_feats, role, augmented=True)
    clean, corrupt = _clean_mask(tr_feats), _corrupt_mask(tr_feats)
    step(f"fitting {recipe.classifier} on {len(X)} vectors ({len(role)} clips, {len(set(g))} speakers)")
    res = fit(X, y, g, recipe, clean_mask=clean, corrupt_mask=corrupt)
    Xg = garbage_features(role, min(GARBAGE_TRAIN, max(200, len(role) // 2)), recipe.seed, recipe.jobs)
    Xw, Xd = detector_synth_features(recipe.jobs)
    Xg_all = np.vstack([Xg, Xw])
    res.estimator.detector = fit_detector(np.vstack([X, Xd]), Xg_all, recipe.seed)
    step("out-of-speaker confidences for the reject threshold")
    conf = oof_confidence(res, X, y, Xg_all, Xd, clean, corrupt, jobs=recipe.jobs)
    threshold = float(np.quantile(conf, REJECT_QUANTILE)) if len(conf) else 0.5
    err.print(f"reject threshold {threshold:.3f} (the {REJECT_QUANTILE:.1%} quantile of out-of-speaker true-digit confidence)")
    classes = [str(c) for c in res.estimator.classes_]
    cnn_specs, member = None, None
    if recipe.cnn:
        cnn_specs = _cnn_spectrograms(feat_recs, recipe, babble, cfg)
        spec_by_name = {r.name: v for r, v in zip(feat_recs, cnn_specs)}
        step(f"fitting the CNN member ({recipe.cnn_nets} net(s)) on {len(role)} clips x {1 + recipe.cnn_copies} spectrograms")
        member = fit_member([spec_by_name[r.name] for r in role], [r.label for r in role], classes,
                            epochs=recipe.cnn_epochs, gain=recipe.cnn_gain, base=recipe.cnn_base, seed=recipe.seed,
                            nets=recipe.cnn_nets, jobs=recipe.jobs)
    embed_member, embed_info = None, None
    if recipe.embed:
        from train.embed import describe, fit_embed, negative_records

        negs = negative_records(comma_list(cfg.train.negatives), cfg.train.hold_out_dev)
        if not negs:
            raise DigitdError("--embed needs non-digit words or noise for its 'other' class (--negatives DIRS)")
        step(f"fitting the speech-embedding member on {len(role)} digit clips + {len(negs)} non-digit clips")
        ef = fit_embed(role + negs, classes, C=recipe.embed_c, weight=recipe.embed_weight, noisy=recipe.embed_noisy,
                       seed=recipe.seed, jobs=recipe.jobs)
        embed_member = ef.member
        threshold = float(np.quantile(ef.oof_digit_conf, REJECT_QUANTILE))
        embed_info = describe(ef, threshold) | {"n_negative_clips": len(negs), "negatives": comma_list(cfg.train.negatives)}
        err.print(f"reject threshold {threshold:.3f} (embedding member, out-of-speaker): "
                  f"{embed_info['oof_other_rejected']:.3f} of held-out non-digit clips rejected")
        if recipe.embed_head:
            from train.embed_head import fit_head_member, heard_windows
            from train.embed_tune import TUNED_FRONTEND, TuneSpec, tune_on_records, write_arrays
            from train.heard import heard_utterances

            heard = heard_utterances(cfg, recipe.heard_streams, hold_out_dev=recipe.hold_out_dev, root=cfg.train.corpora_dir or None,
                                     jobs=recipe.jobs) if recipe.heard_streams else []
            heard_w = heard_windows(heard, recipe.jobs) if heard else None
            heard_m = heard_windows(heard, recipe.jobs, mels=True) if heard and recipe.embed_tune else None
            heard_audio = heard if recipe.embed_tune else []  # its heads after the tuning learn the tuned windows
            heard = [h.without_audio() for h in heard]
            heard_digits = sum(h.label.isdigit() for h in heard)
            if heard:
                step(f"{len(heard)} utterances heard in {recipe.heard_streams} seeds of room streams of training-side voices "
                          f"({heard_digits} digits)")
            heads = recipe.embed_head_nets
            step(f"fitting the embedding member's sequence head{'s' if heads > 1 else ''} ({heads} x: "
                      f"{recipe.embed_head_copies} augmented + {recipe.embed_head_reverb} reverberant + {recipe.embed_head_speed} "
                      f"speed-changed + {recipe.embed_head_low} low-SNR copies per clip)")
            head_args = dict(copies=recipe.embed_head_copies, jobs=recipe.jobs, reverb=recipe.embed_head_reverb,
                             speed=recipe.embed_head_speed, speed_range=speed_range(recipe.speed_range), low=recipe.embed_head_low,
                             low_snr=snr_range(recipe.embed_head_low_snr), denoise=recipe.augment.denoise_prob,
                             low_kinds=comma_list(recipe.embed_head_low_kinds), mic=recipe.augment.mic_prob)
            # each head from its own seed: its own copies and its own start (the first one's
            # out-of-fold confidences give the card's threshold; the others fit once, no folds).
            # With embed_tune the first is tuned with the embedding and the others learn the tuned one.
            fits = [fit_head_member(role + negs, classes, seed=recipe.seed + i, heard=heard, heard_w=heard_w, **head_args,
                                    **({} if i == 0 else {"folds": 0}))
                    for i in range(1 if recipe.embed_tune else heads)]
            if recipe.embed_tune:
                front = (Path(args.out_dir) if args.out_dir else models_dirs()[-1]) / f"{args.name}{TUNED_FRONTEND}"
                spec = TuneSpec(epochs=recipe.embed_tune, freeze=recipe.embed_tune_frozen, heard_per_epoch=recipe.embed_tune_heard)
                step(f"fine-tuning the speech embedding (convolutions {spec.freeze + 1}-20) with the first head, "
                          f"{recipe.embed_tune} epochs")
                tuned = tune_on_records(role + negs, classes, fits[0].head, heard, heard_m, spec=spec,
                                        seed=recipe.seed, head_args=head_args,
                                        on_epoch=lambda e, a: step(f"  epoch {e + 1}/{recipe.embed_tune}: train accuracy {a:.3f}"))
                write_arrays(tuned.arrays, front)
                # the pooled regression (what a user profile adapts) learns the tuned network's vectors too
                refit = fit_embed(role + negs, classes, C=recipe.embed_c, weight=recipe.embed_weight, noisy=recipe.embed_noisy,
                                  seed=recipe.seed, jobs=recipe.jobs, folds=0, frontend=front).member
                embed_member.lr, embed_member.frontend, embed_member.source = refit.lr, refit.frontend, refit.source
                tuned_heard_w = heard_windows(heard_audio, recipe.jobs, front) if heard_audio else None
                del heard_audio, heard_m
                extra_heads = [fit_head_member(role + negs, classes, seed=recipe.seed + i, heard=heard, heard_w=tuned_heard_w,
                                               frontend=front, folds=0, **head_args).head for i in range(1, heads)]
                embed_member.heads = [tuned.head] + extra_heads
                embed_info |= {"tune": {"epochs": recipe.embed_tune, "frozen_convolutions": spec.freeze, "heard_per_epoch": spec.heard_per_epoch,
                                        "last_epoch_train_accuracy": round(tuned.train_accuracy, 4), "frontend": front.name,
                                        "pooled_regression": "refitted on the tuned network's vectors (no folds: the "
                                                             "oof numbers above are the shipped network's)"}}
            else:
                embed_member.heads = [f.head for f in fits]
            hf = fits[0]
            threshold = float(np.quantile(hf.oof_digit_conf, REJECT_QUANTILE))
            embed_info |= {"head": {"oof_digits_rejected": float(np.mean(hf.oof_digit_conf < threshold)),
                                    "oof_other_rejected": float(np.mean(hf.oof_other_conf < threshold)), "n_rows": hf.n_rows}}
            if heard:
                embed_info["head"]["heard"] = {"streams": recipe.heard_streams, "utterances": len(heard),
                                               "digits": heard_digits,
                                               "speakers": len({h.speaker for h in heard if h.speaker})}
            err.print(f"reject threshold {threshold:.3f} (its sequence head, out-of-speaker): "
                      f"{embed_info['head']['oof_other_rejected']:.3f} of held-out non-digit clips rejected")
    model = DigitModel(res.estimator, classes, DEFAULT_PARAMS, {"recipe": recipe.to_dict(), "reject_threshold": threshold},
                       cnn=member, embed=embed_member)
    metrics: dict[str, Any] = {}
    if test_recs:
        m = evaluate_test(model, test_recs)  # every member, exactly as `digitd predict` runs them
        metrics["test"] = {k: v for k, v in m.items() if k not in ("classes", "errors")}
        step(f"official test accuracy {m['accuracy']:.4f} (n={m['n']})")
    if want_loso:
        metrics["loso"] = loso(feats, feat_recs, recipe, on_speaker=lambda s, a: err.print(f"  LOSO {s}: {a:.3f}"),
                               cnn_specs=cnn_specs, join_fold=embed_loso_join(feat_recs, recipe, cfg) if recipe.embed else None)
        step(f"LOSO mean {metrics['loso']['mean']:.4f}")
    out_dir = Path(args.out_dir) if args.out_dir else models_dirs()[-1]
    path = out_dir / f"{args.name}{SUFFIX}"
    extra = [r for r in role if r.split == "extra"]
    card = {
        "name": args.name,
        "command": _command(args),
        "classifier": {"kind": recipe.classifier,
                        "pipeline": "StandardScaler + " + " / ".join(type(m[-1]).__name__ + (" (clean rows)" if c else "")
                                                                     for m, c in zip(res.estimator.members, res.clean_only))
                        + (" + CNN on the log-mel spectrogram (weight "
                           f"{recipe.cnn_base:g} + {recipe.cnn_gain:g} x (1 - clean gate); mean of {recipe.cnn_nets} seed(s))"
                           if member else "")
                        + " (probability average) x digit detector (HistGradientBoosting)",
                        "hyper_params": res.best_params,
                        "cv": {"scheme": "speaker-grouped on the training data (one fold per speaker up to 8 speakers, else 6 grouped folds)",
                               "accuracy": res.cv_accuracy, "grid": res.cv_table}},
        "reject_threshold": threshold,
        "reject_threshold_how": f"{REJECT_QUANTILE:.1%} quantile of out-of-fold (held-out speaker) confidence of true digits"
                                + (" (embedding member's, with the others assumed to agree)" if embed_member else ""),
        "embed": embed_info,
        "recipe": recipe.to_dict(),
        "feature_version": FEATURE_VERSION,
        "libraries": _lib_versions(),
        "data": {"source": source,
                 "description": "FSDD official training split (takes 5-49)" + (f" + {len(extra)} extra clips from "
                                f"{len({r.speaker for r in extra})} speakers (other speakers held out)" if extra else "")
                                + (f" + {len(synth)} espeak-ng digits from {len({r.speaker for r in synth})} training-only "
                                   "voices (no evaluation voice)" if synth else ""),
                 "n_train_clips": len(role), "n_train_vectors": int(len(X)), "n_garbage_clips": int(len(Xg)),
                 "detector": f"HistGradientBoosting: digits (+{len(Xd)} espeak-ng digits) vs {len(Xg)} synthetic noise/click/cough/hum/"
                             f"reversed-speech clips + {len(Xw)} espeak-ng non-digit words (detector-only voices and words)",
                 "speakers": sorted({r.speaker for r in role if r.split == "train"}),
                 "fingerprint": fingerprint(role),
                 "license": "FSDD: CC BY-SA 4.0" + ("; Speech Commands: CC BY 4.0" if extra else "")},
        "metrics": metrics,
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    save_model(model, path, card)
    err.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB) and {path.with_suffix('.json').name}")
    return 0


def _model_path(args: argparse.Namespace, cfg: Any) -> Path:
    p = getattr(args, "model", None) or cfg.classify.model
    return Path(p) if p else default_model_path()


def evaluate_test(model: DigitModel, test_recs: list[Record]) -> dict[str, Any]:
    """Classify every test clip exactly as `digitd predict` does, timing features+classify."""
    preds, times = [], []
    for r in test_recs:
        x = r.load()
        t = time.perf_counter()
        p = model.predict_wave(x)
        times.append(time.perf_counter() - t)
        preds.append(p.label)
    m = summarize([r.label for r in test_recs], preds, model.classes)
    m["ms_per_utterance"] = float(1000 * np.mean(times))
    m["errors"] = [{"file": r.path or r.name, "true": r.label, "pred": p} for r, p in zip(test_recs, preds) if p != r.label]
    return m


def _table(title: str, cols: list[str], rows: list[list[str]]):
    from rich.table import Table

    t = Table(title=title)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    return t


@on_cluster
def eval_command(args: argparse.Namespace, cfg: Any) -> int:
    as_json = bool(getattr(args, "json", False))
    err = _console()
    out = _console(stderr=False)
    show = (lambda *a: None) if as_json else out.print
    path = _model_path(args, cfg)
    model = load_model(path)
    records, source = load_records(args, cfg)
    test_recs = [r for r in records if r.split == "test"]
    if not test_recs:
        raise DigitdError("no official test-split records (FSDD takes 0-4) found")
    result: dict[str, Any] = {"model": str(path), "data": source}
    m = evaluate_test(model, test_recs)
    result["classes"] = m.pop("classes")
    result["test"] = m
    show(confusion_table({**m, "classes": result["classes"]}, f"official test split: {m['n']} clips"))
    show(f"accuracy {m['accuracy']:.4f}  macro P {m['macro_precision']:.4f}  R {m['macro_recall']:.4f}  "
         f"F1 {m['macro_f1']:.4f}  {m['ms_per_utterance']:.2f} ms/utterance (features+classify)")
    plots = Path(args.plots) if getattr(args, "plots", None) else None
    if plots:
        plot_confusion({**m, "classes": result["classes"]}, plots / "confusion_test.png", f"{path.name}: official test")
    seed = cfg.train.seed
    if getattr(args, "conditions", False):
        from train.robust import run_conditions

        bab = babble_bank(records, seed + 1000)
        cond = run_conditions(model, test_recs, bab, jobs=cfg.train.jobs, seed=seed + 1)
        result["conditions"] = cond
        show(_table("official test split under conditions", ["condition", "accuracy"], [[k, f"{v:.4f}"] for k, v in cond.items()]))
        if plots:
            _plot_snr(cond, plots / "accuracy_vs_snr.png")
    extra_test = [r for r in records if r.split == "extra-test"]
    if extra_test:
        from train.robust import accuracy_by_group

        ex = accuracy_by_group(model, extra_test)
        ex["speakers"] = len(ex.pop("per_voice"))
        result["extra_heldout"] = ex
        show(f"held-out extra-corpus speakers: accuracy {ex['accuracy']:.4f} on {ex['n']} clips from {ex['speakers']} speakers")
    if getattr(args, "unseen", False):
        result["unseen"] = _unseen(model, cfg, show)
    if getattr(args, "espeak", False):
        from train.robust import accuracy_by_group
        from train.synth import espeak_available, espeak_digits

        if not espeak_available():
            raise DigitdError("--espeak needs espeak-ng (apt install espeak-ng)")
        recs = espeak_digits(Path(tempfile.gettempdir()) / "digitd-espeak")
        es = accuracy_by_group(model, recs)
        result["espeak"] = es
        show(_table(f"espeak-ng digits (never trained on): accuracy {es['accuracy']:.4f}", ["voice", "accuracy"],
                    [[k, f"{v:.2f}"] for k, v in es["per_voice"].items()]))
    if getattr(args, "open_set", False):
        result["open_set"] = _open_set(model, cfg, test_recs, seed, show)
    if getattr(args, "loso", False):
        recipe = Recipe.from_dict(model.meta.get("recipe", {}))
        recipe.jobs = cfg.train.jobs
        light = bool(getattr(args, "loso_light", False)) and recipe.cnn
        recipe.cnn = recipe.cnn and not light
        if recipe.cnn:
            _require_torch()
        babble = babble_bank(records, recipe.seed) if recipe.augment.copies or recipe.cnn else None
        feat_recs = [r for r in records if r.split in ("train", "extra", "test")] + synth_records(recipe)
        feats = extract_all(feat_recs, model.params, jobs=recipe.jobs, spec=recipe.augment, seed=recipe.seed,
                            label="LOSO features", babble=babble)
        cnn_specs = _cnn_spectrograms(feat_recs, recipe, babble, cfg) if recipe.cnn else None
        join = embed_loso_join(feat_recs, recipe, cfg) if recipe.embed else None
        res = loso(feats, feat_recs, recipe, on_speaker=lambda s, a: err.print(f"  LOSO {s}: {a:.3f}"), cnn_specs=cnn_specs,
                   join_fold=join)
        res["folds"] = "every member refitted per fold" + (", but the CNN (--loso-light)" if light else "")
        result["loso"] = res
        rows = [[s, f"{a:.3f}"] for s, a in res["per_speaker"].items()]
        rows += [["[bold]mean[/]", f"[bold]{res['mean']:.3f}[/]"], ["worst", f"{res['worst']:.3f}"]]
        show(_table(f"leave-one-speaker-out ({recipe.classifier}; {res['folds']})", ["held-out speaker", "accuracy"], rows))
    if getattr(args, "record", False):
        record_in_card(path, result, _command(args))
        err.print(f"recorded in {card_path(path)}")
    if as_json:
        print(json.dumps(result))
    return 0


def record_in_card(path: Path, result: dict[str, Any], command: str) -> None:
    """The card keeps the robustness numbers the README reports, with the command that made them.

    Sections merge: a later `eval --loso --record` adds LOSO without wiping `--conditions`, and
    `measured_by` names the command behind each section. The card's SHA-256 is of the model
    file, so rewriting the card leaves it loadable."""
    card = read_card(path)
    summary = {k: v for k, v in result.items() if k not in ("model",)}
    if "test" in summary:
        summary["test"] = {k: v for k, v in summary["test"].items() if k != "confusion"}
    old = dict(card.get("eval", {}))
    by = dict(old.pop("measured_by", {}))
    earlier = old.pop("command", None)
    by.update({k: earlier for k in old if k != "created" and k not in by and earlier})  # cards before sections merged
    by.update({k: command for k in summary})
    card["eval"] = {**{k: v for k, v in old.items() if k != "created"}, **summary, "command": command,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "measured_by": by}
    write_card(path, card)


def _unseen(model: DigitModel, cfg: Any, show) -> dict[str, Any]:
    from digitd.corpora import available, shared_dir, split_clips
    from train.unseen import evaluate_unseen

    root = Path(cfg.train.corpora_dir) if cfg.train.corpora_dir else shared_dir()
    if not available(root):
        raise DigitdError(f"{root}: none of the extra corpora (speech-commands-digits, audiomnist-digits, ...) is there; "
                          "set train.corpora_dir or $DIGITD_SHARED_DIR")
    clips = split_clips(root, unseen=True)
    res = evaluate_unseen(model, clips, cfg.classify)
    show(confusion_table({"classes": model.classes, "confusion": res["confusion"], **res},
                         f"unseen speakers: {res['n']} digits from {res['speakers']} speakers never trained on"))
    rows = [["accuracy", f"{res['accuracy']:.4f}"], ["balanced accuracy (mean per-class recall)", f"{res['balanced_accuracy']:.4f}"]]
    rows += [[f"  {k}", f"{v['accuracy']:.4f} (n={v['n']})"] for k, v in res["per_corpus"].items()]
    rows += [[f"  class {c}", f"{v:.3f} (n={res['n_per_class'][c]})"] for c, v in res["per_class"].items()]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    rows += [[f"non-digit words rejected (n={res['n_words']})", fmt(res["words_rejected"])],
             ["  'on' / 'tree' rejected", " / ".join(fmt(v) for v in res["near_homophones_rejected_by_word"].values())],
             [f"noise clips rejected (n={res['n_noise']})", fmt(res["noise_rejected"])],
             ["true digits rejected", fmt(res["digits_rejected"])]]
    show(_table(f"unseen speakers at classify.reject_threshold = {res['threshold']} (agree_min {res['agree_min']}, "
                f"pitch {res['min_voiced_ms']:g} ms within {res['voiced_range_db']:g} dB)", ["measure", "value"], rows))
    return res


def _open_set(model: DigitModel, cfg: Any, test_recs: list[Record], seed: int, show) -> dict[str, Any]:
    from digitd.audio import load_wav
    from train.garbage import garbage_clips
    from train.robust import nondigit_words_dir, open_set

    rng = np.random.default_rng([seed, 424242])  # not the training garbage seed
    nondigit: dict[str, list[np.ndarray]] = {}
    for kind, w in garbage_clips(300, rng, kinds=("noise", "click", "cough")):
        nondigit.setdefault(kind, []).append(w)
    words = sorted(nondigit_words_dir().glob("*.wav"))
    if words:
        nondigit["non-digit words"] = [load_wav(p) for p in words]
    threshold = cfg.classify.reject_threshold
    res = open_set(model, threshold, [r.load() for r in test_recs], nondigit)
    res["model_suggested_threshold"] = model.meta.get("reject_threshold")
    rows = [[k, str(v["n"]), f"{v['rate']:.3f}"] for k, v in res["rejected"].items()]
    rows.append(["true test digits (should be kept)", str(res["n_digits"]), f"{res['true_digits_rejected']:.3f}"])
    show(_table(f"open set: share rejected at classify.reject_threshold = {threshold}", ["input", "n", "rejected"], rows))
    return res


def _plot_snr(cond: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for kind in ("white", "pink", "babble"):
        pts = sorted((int(k.split()[1]), v) for k, v in cond.items() if k.startswith(kind + " "))
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=kind)
    if "clean" in cond:
        ax.axhline(100 * cond["clean"], color="grey", ls="--", label="clean")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
