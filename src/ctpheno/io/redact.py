"""Paths out of messages: what keeps file and folder names (which may hold patient names) out of
the failures table, logs and reports once ingest has named every file by a PHI-free token."""

from __future__ import annotations

import os

MIN_SCRUB_NAME = 3
"""Shortest file name :func:`scrub` replaces on its own (shorter ones, e.g. ``1``, would mangle text)."""


def scrub(text: str, *paths: str, token: str = "<file>") -> str:
    """``text`` with every path in ``paths`` replaced by ``token``: the path as given and resolved,
    its folders (two levels deep or more: ``/archive/DOE^JOHN``, not ``/tmp``) and its file name.

    Library error messages often quote the file they failed on; after ingest a file is named
    by its PHI-free ``source`` token instead.
    """
    names: set[str] = set()
    for p in paths:
        p = str(p)
        for form in {p, os.path.realpath(p) if "://" not in p else p}:
            names.add(form)
            parts = form.replace("\\", "/").rstrip("/").split("/")
            if len(parts[-1]) >= MIN_SCRUB_NAME:
                names.add(parts[-1])
            first = 3 if form.startswith("/") else 2  # '', 'archive', 'DOE^JOHN' / 'data', 'DOE^JOHN'
            names |= {"/".join(parts[:k]) for k in range(first, len(parts))}
    for name in sorted(names, key=len, reverse=True):
        if name:
            text = text.replace(name, token)
    return text
