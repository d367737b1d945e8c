"""Exit codes of every ``ctpheno`` command, in one place (documented in the README and ``--help``).

==== ================ ==============================================================================
code name             meaning
==== ================ ==============================================================================
0    ``OK``           everything asked for was done
1    ``INTERNAL``     an unexpected error inside ctpheno (a bug: please report it with the traceback)
2    ``USAGE``        a user or environment error, found before or during the run: bad option or
                      configuration, nothing found at the inputs, a work directory that is a file,
                      read-only or on a full disk. Nothing half-written is left behind
3    ``SCANS_FAILED`` the run finished, but some scans or input files could not be processed: they
                      are rows of ``failures.parquet`` and of the report (non-image files and empty
                      folders, which are only noted there, do not count)
==== ================ ==============================================================================
"""

from __future__ import annotations

OK = 0
INTERNAL = 1
USAGE = 2
SCANS_FAILED = 3

MEANINGS: dict[int, str] = {
    OK: "everything asked for was done",
    INTERNAL: "unexpected internal error (a bug: report it with the traceback it printed)",
    USAGE: "user or environment error: bad option or config, nothing found at the inputs, "
    "work directory unusable (a file, read-only, disk full)",
    SCANS_FAILED: "finished, but some scans or input files failed (see failures.parquet and the report)",
}
"""code -> one-line meaning (``ctpheno --help`` and the README)."""


def help_text() -> str:
    """The exit-code table as plain text for ``ctpheno --help``."""
    return "Exit codes: " + "; ".join(f"{code} {text}" for code, text in MEANINGS.items()) + "."


def markdown_table() -> str:
    """The exit-code table for the documentation."""
    rows = ["| exit code | meaning |", "|---|---|"]
    rows += [f"| {code} | {text} |" for code, text in MEANINGS.items()]
    return "\n".join(rows) + "\n"
