"""Parsing the package's own source, for the tests that read it (table names, settings, channel names)."""

import ast
from pathlib import Path


def parse(path: Path) -> ast.Module:
    """`ast.parse` of a file, tried again once after CPython 3.11's spurious "AST constructor
    recursion depth mismatch" SystemError (python/cpython#106905: the AST builder's depth counter
    can be left off in a process with other threads, such as Spark's py4j ones; fixed in 3.12)."""
    text = path.read_text()
    try:
        return ast.parse(text)
    except SystemError as e:
        if "recursion depth mismatch" not in str(e):
            raise
        return ast.parse(text)
