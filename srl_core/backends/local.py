"""The in-process backend: items one after the other, here, with cancel between them."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..progress import Progress
from . import ResultFn


class LocalBackend:
    """Runs every item in this process, in order; what a Dask run is checked against."""

    name = "local"

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any], on_result: ResultFn,
                      progress: Progress) -> None:
        for index, item in enumerate(items):
            progress.check()
            on_result(index, fn(item))

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
