"""Salted pseudonyms (HMAC-SHA256) for subject, study, series and scan ids.

The salt comes, in order, from ``paths.pseudonym_salt``, from the environment
variable named by ``paths.pseudonym_salt_env`` (default ``CTPHENO_SALT``) or —
when neither is set — from ``<workdir>/ingest/.salt``, a random 32-byte salt
created on the first run with mode 0600 so that reruns in the same work
directory give the same ids. Keep that file (or set the environment variable)
to link later runs to earlier ones; without it the pseudonyms cannot be
reversed or reproduced.

.. math:: \\mathrm{id} = \\mathrm{prefix} \\,\\|\\, \\mathrm{hex}_{12}\\big(\\mathrm{HMAC\\text{-}SHA256}
          (\\mathrm{salt}, \\mathrm{kind} \\,\\|\\, \\mathrm{value})\\big)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..config.common import PathsConfig
from ..io.layout import WorkDir

PREFIX = {"subject": "p-", "study": "t-", "series": "r-", "scan": "s-", "file": "f-", "folder": "d-"}
"""Prefix of each kind of pseudonym (ids stay file-name safe: ``[a-z]-[0-9a-f]{12}``)."""


def salt_path(wd: WorkDir) -> Path:
    return wd.root / "ingest" / ".salt"


def _existing_salt(paths: PathsConfig, wd: WorkDir) -> bytes | None:
    """The salt from config, then environment, then the work dir's ``ingest/.salt``; None if none is set."""
    if paths.pseudonym_salt:
        return paths.pseudonym_salt.encode()
    env = os.environ.get(paths.pseudonym_salt_env, "")
    if env:
        return env.encode()
    path = salt_path(wd)
    return path.read_bytes().strip() if path.is_file() else None


def has_salt(paths: PathsConfig, wd: WorkDir) -> bool:
    """Whether :func:`resolve_salt` finds a salt without creating one (config, environment or work dir)."""
    return _existing_salt(paths, wd) is not None


def resolve_salt(paths: PathsConfig, wd: WorkDir) -> bytes:
    """The pseudonym salt (config, then environment, then the work dir's ``ingest/.salt``); a random
    one is created in the work dir when none is set."""
    found = _existing_salt(paths, wd)
    if found is not None:
        return found
    path = salt_path(wd)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


class Pseudonymizer:
    """Maps raw identifiers to stable salted pseudonyms."""

    def __init__(self, salt: bytes) -> None:
        if not salt:
            raise ValueError("pseudonym salt is empty; set paths.pseudonym_salt or $CTPHENO_SALT")
        self._salt = salt

    def __call__(self, kind: str, value: str, *, n: int = 12) -> str:
        if kind not in PREFIX:
            raise ValueError(f"unknown pseudonym kind {kind!r}; one of {sorted(PREFIX)}")
        # surrogateescape: file names that are not valid UTF-8 get ids too (valid text is unchanged)
        digest = hmac.new(self._salt, f"{kind}\x00{value}".encode("utf-8", "surrogateescape"),
                          hashlib.sha256).hexdigest()
        return PREFIX[kind] + digest[:n]

    def subject(self, patient_id: str) -> str:
        """Subject pseudonym of a raw PatientID (also used for the clinical table's id column)."""
        return self("subject", str(patient_id).strip())
