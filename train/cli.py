"""`digitd train` and `digitd eval`."""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from digitd.cli import DigitdError
from digitd.features import DEFAULT_PARAMS, FEATURE_VERSION
from digitd.model import DigitModel, default_model_path, load_model, models_dirs, save_model
from train.data import DataError, Record, default_data_dir, fingerprint, load_folder, load_hf
from train.metrics import confusion_table, plot_confusion, summarize
from train.trainer import Recipe, _clean_mask, extract_all, fit, loso, stack


def _console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr)


def load_records(args: argparse.Namespace, cfg: Any, *, quiet: bool = False) -> tuple[list[Record], str]:
    """Records from --hf or the data folder; skipped files are listed on stderr, one line each."""
    try:
        if getattr(args, "hf", False):
            return load_hf(), "Hugging Face mteb/free-spoken-digit-dataset"
        folder = default_data_dir(cfg.train.data_dir)
        records, bad = load_folder(folder, strict=getattr(args, "strict", False))
    except DataError as e:
        raise DigitdError(str(e)) from None
    for line in bad:
        print(f"digitd: skipped {line}", file=sys.stderr)
    return records, f"FSDD folder {folder}"


def recipe_from(args: argparse.Namespace, cfg: Any) -> Recipe:
    from train.augment import AugmentSpec

    t = cfg.train
    spec = AugmentSpec(copies=getattr(t, "aug_copies", 0))
    return Recipe(classifier=t.classifier, augment=spec, seed=t.seed, jobs=t.jobs)


def _lib_versions() -> dict[str, str]:
    import joblib
    import python_speech_features  # noqa: F401
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "joblib": joblib.__version__}


def _command(args: argparse.Namespace) -> str:
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return "digitd " + shlex.join(argv)


def train_command(args: argparse.Namespace, cfg: Any) -> int:
    t0 = time.perf_counter()
    err = _console()
    records, source = load_records(args, cfg)
    recipe = recipe_from(args, cfg)
    train_recs = [r for r in records if r.split == "train"]
    test_recs = [r for r in records if r.split == "test"]
    if not train_recs:
        raise DigitdError("no training-split records (FSDD takes 5-49) found")
    want_loso = bool(getattr(args, "loso", False))
    # LOSO needs augmented features for every record; otherwise only the training split.
    feat_recs = records if want_loso else train_recs
    feats = extract_all(feat_recs, DEFAULT_PARAMS, jobs=recipe.jobs, spec=recipe.augment, seed=recipe.seed, label="features")
    by_name = {r.name: f for r, f in zip(feat_recs, feats)}
    tr_feats = [by_name[r.name] for r in train_recs]
    X, y, g = stack(tr_feats, train_recs, augmented=True)
    err.print(f"fitting {recipe.classifier} on {len(X)} vectors ({len(train_recs)} clips, {len(set(g))} speakers)")
    res = fit(X, y, g, recipe, clean_mask=_clean_mask(tr_feats))
    classes = [str(c) for c in res.estimator.classes_]
    model = DigitModel(res.estimator, classes, DEFAULT_PARAMS, {"recipe": recipe.to_dict()})
    metrics: dict[str, Any] = {}
    if test_recs:
        te_feats = extract_all(test_recs, DEFAULT_PARAMS, jobs=recipe.jobs, spec=None, label="test features")
        Xte, yte, _ = stack(te_feats, test_recs, augmented=False)
        m = summarize(yte, [classes[i] for i in np.argmax(model.scores(Xte), axis=1)], classes)
        metrics["test"] = {k: v for k, v in m.items() if k != "classes"}
        err.print(f"official test accuracy {m['accuracy']:.4f} (n={m['n']})")
    if want_loso:
        metrics["loso"] = loso(feats, feat_recs, recipe, on_speaker=lambda s, a: err.print(f"  LOSO {s}: {a:.3f}"))
        err.print(f"LOSO mean {metrics['loso']['mean']:.4f}")
    out_dir = Path(args.out_dir) if args.out_dir else models_dirs()[-1]
    path = out_dir / f"{args.name}.joblib"
    hp = {k.removeprefix("clf__"): v for k, v in res.best_params.items()}
    card = {
        "name": args.name,
        "command": _command(args),
        "classifier": {"kind": recipe.classifier, "pipeline": "StandardScaler + " + type(res.estimator[-1]).__name__,
                        "hyper_params": hp, "cv": {"scheme": "leave-one-speaker-out on the training split",
                                                   "accuracy": res.cv_accuracy, "grid": res.cv_table}},
        "recipe": recipe.to_dict(),
        "feature_version": FEATURE_VERSION,
        "libraries": _lib_versions(),
        "data": {"source": source, "description": "FSDD official training split (takes 5-49)",
                 "n_train_clips": len(train_recs), "n_train_vectors": int(len(X)),
                 "speakers": sorted(set(r.speaker for r in train_recs)),
                 "fingerprint": fingerprint(train_recs), "license": "FSDD: CC BY-SA 4.0"},
        "metrics": metrics,
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    save_model(model, path, card)
    err.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB) and {path.with_suffix('.json').name}")
    return 0


def _model_path(args: argparse.Namespace, cfg: Any) -> Path:
    p = getattr(args, "model", None) or cfg.classify.model
    return Path(p) if p else default_model_path()


def evaluate_test(model: DigitModel, test_recs: list[Record]) -> tuple[dict[str, Any], list[str]]:
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
    return m, preds


def eval_command(args: argparse.Namespace, cfg: Any) -> int:
    as_json = bool(getattr(args, "json", False))
    err = _console()
    out = _console(stderr=False)
    path = _model_path(args, cfg)
    model = load_model(path)
    records, source = load_records(args, cfg)
    test_recs = [r for r in records if r.split == "test"]
    if not test_recs:
        raise DigitdError("no official test-split records (FSDD takes 0-4) found")
    result: dict[str, Any] = {"model": str(path), "data": source}
    m, _ = evaluate_test(model, test_recs)
    result["test"] = {k: v for k, v in m.items() if k != "classes"}
    result["classes"] = m["classes"]
    if not as_json:
        out.print(confusion_table(m, f"official test split: {m['n']} clips"))
        out.print(f"accuracy {m['accuracy']:.4f}  macro P {m['macro_precision']:.4f}  R {m['macro_recall']:.4f}  "
                  f"F1 {m['macro_f1']:.4f}  {m['ms_per_utterance']:.2f} ms/utterance (features+classify)")
    if getattr(args, "plots", None):
        plot_confusion(m, Path(args.plots) / "confusion_test.png", f"{path.name}: official test")
    if getattr(args, "loso", False):
        recipe = Recipe.from_dict(model.meta.get("recipe", {}))
        recipe.jobs = cfg.train.jobs
        feats = extract_all(records, model.params, jobs=recipe.jobs, spec=recipe.augment, seed=recipe.seed,
                            label="LOSO features", progress=True)
        res = loso(feats, records, recipe, on_speaker=lambda s, a: err.print(f"  LOSO {s}: {a:.3f}"))
        result["loso"] = res
        if not as_json:
            from rich.table import Table

            t = Table(title=f"leave-one-speaker-out ({recipe.classifier}, retrained per speaker)")
            t.add_column("held-out speaker")
            t.add_column("accuracy", justify="right")
            for s, a in res["per_speaker"].items():
                t.add_row(s, f"{a:.3f}")
            t.add_row("[bold]mean[/]", f"[bold]{res['mean']:.3f}[/]")
            t.add_row("worst", f"{res['worst']:.3f}")
            out.print(t)
    if as_json:
        print(json.dumps(result))
    return 0
