"""How the command line turns exceptions into messages and exit codes (:mod:`ctpheno.exitcodes`).

Every ``ctpheno`` command runs inside :class:`ErrorHandlingGroup`, so a new command gets the
same treatment without code of its own: a user or environment error (bad configuration, a
missing input, a work directory that cannot be written, a full disk, a file SimpleITK cannot
read) ends with one ``error: ...`` line and exit code 2, never a traceback; anything else is a
bug and exits 1 with its traceback. The raw arguments of the command are kept
(:func:`invoked_command`) so that ``runs/<id>/command.txt`` records what was typed
(after :func:`ctpheno.config.public.public_command` has replaced paths and secrets).
"""

from __future__ import annotations

import contextvars
import errno
import logging
import shlex
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from . import exitcodes
from .errors import CTPhenoError

log = logging.getLogger(__name__)
_ARGV: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("ctpheno_argv", default=None)
_USAGE_ERROR = sys.modules[TyperGroup.__mro__[1].__module__].UsageError  # click's (vendored by newer Typer)
PASS_THROUGH: tuple[type[BaseException], ...] = (typer.Exit, typer.Abort, _USAGE_ERROR.__mro__[1])
"""Exceptions the command-line framework turns into exit codes itself (usage errors, ``typer.Exit``)."""
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _os_message(err: OSError) -> str:
    if err.errno is None:  # raised with a message of its own (``FileNotFoundError("run ingest first")``)
        return str(err)
    where = f" {err.filename}" if err.filename else ""
    if err.errno in _NO_SPACE:
        return (f"no space left on the device while writing{where}; the partial output was removed "
                "(the work directory's manifest and tables are only replaced once complete) — "
                "free some space and run again")
    if err.errno in _NOT_ALLOWED:
        return (f"cannot write or read{where}: {err.strerror}; choose a work directory you can write "
                "to (--workdir) and inputs you can read")
    if isinstance(err, (FileExistsError, NotADirectoryError)):
        return f"{err.strerror}:{where} (a file is in the way of a folder; check --workdir and the inputs)"
    return f"{err.strerror or type(err).__name__}:{where}"


def describe_error(err: BaseException) -> tuple[int, str]:
    """``(exit code, one-line message)`` of an exception that ended a command."""
    if isinstance(err, CTPhenoError):
        return exitcodes.USAGE, str(err)
    if isinstance(err, OSError):
        return exitcodes.USAGE, _os_message(err)
    if isinstance(err, ValueError):  # bad arguments (house style: ValueError names the value and fix)
        return exitcodes.USAGE, str(err)
    if isinstance(err, RuntimeError) and "SimpleITK" in str(err):  # ITK cannot read a user's file
        lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
        return exitcodes.USAGE, f"SimpleITK cannot read the file: {lines[-1] if lines else err}"
    return exitcodes.INTERNAL, f"internal error: {type(err).__name__}: {err}"


class ErrorHandlingGroup(TyperGroup):
    """The ``ctpheno`` command group: user errors become a message and exit code 2 (see module)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _ARGV.set(list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PASS_THROUGH:
            raise
        except Exception as err:  # noqa: BLE001 - every exception gets a message and a documented code
            code, message = describe_error(err)
            # the log gets the type only: messages of library errors may hold input paths
            log.info("stopped: exit code %d (%s)", code, type(err).__name__)
            if code == exitcodes.INTERNAL:
                traceback.print_exception(err, file=sys.stderr)
            typer.secho(f"error: {message}", fg="red", err=True)
            raise typer.Exit(code) from None


def invoked_command(default: str) -> str:
    """The command line as typed (``ctpheno`` + arguments), or ``default`` outside a command."""
    argv = _ARGV.get()
    return shlex.join(["ctpheno", *argv]) if argv else default


def module_exit(run: Callable[[], int | None]) -> int:
    """Exit code of a ``python -m ctpheno.<stage>`` entry point: ``run``'s own, or its exception's.

    The module entry points parse their own arguments; this gives them the same messages and
    codes as the ``ctpheno`` commands (see :func:`describe_error`).
    """
    try:
        return run() or exitcodes.OK
    except Exception as err:  # noqa: BLE001 - every exception gets a message and a documented code
        code, message = describe_error(err)
        if code == exitcodes.INTERNAL:
            traceback.print_exception(err, file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return code
