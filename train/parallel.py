"""Running one function over many records in parallel, with a progress bar: the one place the
trainer's parallel parts (features, spectrograms, embeddings) go through."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from train.data import Record


def map_records(records: Sequence[Record], fn: Callable[[Record], Any], *, jobs: int = 2, label: str = "records",
                progress: bool = True) -> list[Any]:
    """[fn(r) for r in records], by `jobs` processes in chunks of 32, with a rich progress bar."""
    from joblib import Parallel, delayed
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    results: list[Any] = []
    chunks = [records[i : i + 32] for i in range(0, len(records), 32)]

    def work(chunk: Sequence[Record]) -> list[Any]:
        return [fn(r) for r in chunk]

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), disable=not progress, transient=True,
    ) as bar:
        task = bar.add_task(label, total=len(records))
        for chunk_out in Parallel(n_jobs=jobs, return_as="generator")(delayed(work)(c) for c in chunks):
            results.extend(chunk_out)
            bar.advance(task, len(chunk_out))
    return results
