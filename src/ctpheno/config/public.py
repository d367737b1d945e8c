"""What of a configuration and a command line may be written into the work directory.

Input paths often name patients (``/archive/DOE^JOHN_1931/``) and the pseudonym salt is a
secret, yet the resolved configuration (``runs/<id>/config.resolved.yaml``, shown in the
report) and the command line (``runs/<id>/command.txt``) are kept with every run. Both are
written through this module: input paths become the tokens ``<input0>``, ``<input1>`` …
(the same index as the manifest's ``source`` column, ``input0/d-…``), the clinical table
becomes ``<clinical>``, and every value whose key names a secret (salt, password, token …)
becomes ``***``. The raw paths stay only in ``ingest/sources.parquet`` (mode 0600).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any

MASK = "***"
"""Written in place of a secret."""
CLINICAL_TOKEN = "<clinical>"
"""Written in place of ``paths.clinical``."""
SECRET_KEY = re.compile(r"salt|secret|passw|token|credential|api_?key|private_?key", re.IGNORECASE)
"""Keys whose values are secrets; a key ending in ``_env`` names a variable, not a secret."""


def input_token(index: int) -> str:
    """The token written for ``paths.inputs[index]``."""
    return f"<input{index}>"


def _is_secret_key(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return bool(SECRET_KEY.search(last)) and not last.endswith("_env")


def _mask_secrets(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: (MASK if _is_secret_key(str(k)) and v not in (None, "") else _mask_secrets(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_mask_secrets(v) for v in data]
    return data


def public_config(cfg: Any) -> dict[str, Any]:
    """The configuration as JSON-able data with input paths tokenised and secrets masked."""
    data = json.loads(cfg.model_dump_json())
    paths = data["paths"]
    paths["inputs"] = [input_token(i) for i in range(len(paths.get("inputs") or []))]
    if paths.get("clinical"):
        paths["clinical"] = CLINICAL_TOKEN
    return _mask_secrets(data)


def _replacements(cfg: Any) -> list[tuple[str, str]]:
    """(raw text, replacement) pairs, longest raw text first."""
    pairs = [(str(p), input_token(i)) for i, p in enumerate(cfg.paths.inputs)]
    if cfg.paths.clinical:
        pairs.append((str(cfg.paths.clinical), CLINICAL_TOKEN))
    for secret in (cfg.paths.pseudonym_salt, os.environ.get(cfg.paths.pseudonym_salt_env)):
        if secret:
            pairs.append((str(secret), MASK))
    return sorted({p for p in pairs if p[0]}, key=lambda p: -len(p[0]))


def _replace(text: str, pairs: list[tuple[str, str]]) -> str:
    for raw, token in pairs:
        # whole values only: the raw text bounded by the start/end, '=', quotes, brackets or commas
        text = re.sub(rf"(?<![^\s=\[,\"']){re.escape(raw)}(?![^\s\],\"'])", token.replace("\\", r"\\"), text)
    return text


def public_command(command: str, cfg: Any) -> str:
    """``command`` with the configuration's input paths, clinical table and secrets replaced.

    ``--set key=value`` arguments whose key names a secret are masked whatever their value.
    """
    pairs = _replacements(cfg)
    try:
        args = shlex.split(command)
    except ValueError:  # unbalanced quotes: treat it as one string
        return _replace(command, pairs)
    out = []
    for arg in args:
        key, sep, _ = arg.partition("=")
        if sep and _is_secret_key(key.lstrip("-")):
            out.append(f"{key}={MASK}")
        else:
            out.append(_replace(arg, pairs))
    return shlex.join(out)
