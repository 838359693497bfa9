"""Classification metrics and their rich/PNG presentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def summarize(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=list(classes), average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_precision": float(p),
        "macro_recall": float(r),
        "macro_f1": float(f),
        "classes": list(classes),
        "confusion": confusion_matrix(y_true, y_pred, labels=list(classes)).tolist(),
    }


def confusion_table(m: dict[str, Any], title: str):
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    t.add_column("true\\pred", style="bold")
    for c in m["classes"]:
        t.add_column(c, justify="right")
    for c, row in zip(m["classes"], m["confusion"]):
        t.add_row(c, *[(f"[green]{v}[/]" if i == j and v else (f"[red]{v}[/]" if v else "·"))
                       for j, v in enumerate(row) for i in [m["classes"].index(c)]])
    return t


def plot_confusion(m: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(m["confusion"])
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(m["classes"])), m["classes"])
    ax.set_yticks(range(len(m["classes"])), m["classes"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
