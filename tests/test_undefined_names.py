"""No name is used in ``src/`` that is never defined (pyflakes' undefined-name check).

A merge that drops a definition but keeps its use (a refactor that removed two locals while a
later line still read them) passes the import and every test that does not reach the line; pyflakes
sees it statically.
"""

from __future__ import annotations

from pathlib import Path

from pyflakes import checker as pyflakes_checker

SRC = Path(__file__).resolve().parents[1] / "src" / "ctpheno"


def undefined_names(source: str, filename: str) -> list[str]:
    import ast

    from pyflakes import messages

    tree = ast.parse(source, filename=filename)
    checker = pyflakes_checker.Checker(tree, filename=filename)
    bad = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)
    return [f"{filename}:{m.lineno}: {m.message % m.message_args}" for m in checker.messages if isinstance(m, bad)]


def test_the_check_sees_an_undefined_name():
    assert undefined_names("def f():\n    return r + 1\n", "x.py") == ["x.py:2: undefined name 'r'"]


def test_no_undefined_name_in_src():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += undefined_names(path.read_text(), str(path.relative_to(SRC.parent)))
    assert not found, "\n".join(found)
