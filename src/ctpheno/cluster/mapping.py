"""Map a function over many small jobs on the configured Dask cluster (the model stages' fits).

The science functions take a *mapper*: ``mapper(func, items, **shared) -> list`` returns
``[func(item, **shared) for item in items]`` in order. :func:`serial_map` is that, in this
process; :func:`task_map` returns one that runs each item as a Dask task on ``client``'s
workers (``shared`` values are scattered once to every worker, not shipped with each task).
Both give the same results when ``func`` is deterministic, which the model stages rely on.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence


class Mapper(Protocol):
    def __call__(self, func: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]: ...


def serial_map(func: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
    """``[func(item, **shared) for item in items]`` in this process."""
    return [func(item, **shared) for item in items]


def task_map(client: Any) -> Mapper:
    """A mapper running each item as a task on ``client`` (a ``distributed.Client``); serial without one.

    The first failing task's exception is raised, as in the serial loop.
    """
    if client is None:
        return serial_map

    def run(func: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
        if not items:
            return []
        # a one-element list, so a dict or list value travels as one object, not element by element
        kwargs = {k: client.scatter([v], broadcast=True, hash=False)[0] for k, v in shared.items()}
        futures = client.map(func, list(items), pure=False, **kwargs)
        try:
            return client.gather(futures)
        finally:
            client.cancel(futures)
            for f in kwargs.values():
                f.release()

    return run
