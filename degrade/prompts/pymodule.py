"""The original study's prompt module, read with ``ast``: it is never imported or run.

The study kept its prompts in ``configs/prompts.py``: module-level lists of string literals
(``dream_prompts_it = ["…", …]``) and lists built with ``+`` from earlier ones
(``iq_prompts_it = math_prompts_it + language_prompts_it + …``). Only those two shapes are
read; anything else that could compute a value is refused with its line number. Each item of a
list built with ``+`` takes as its category the name of the list it came from, without the
``_prompts`` and variant parts (``math_prompts_it`` → ``math``), so ``experiment.categories``
can pick the study's tasks out of its combined list.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from degrade.errors import ConfigError

KEY = "experiment.prompts_file"
Item = tuple[str, "str | None"]  # (text, category)

_IGNORED = (ast.Import, ast.ImportFrom, ast.Pass)
MAX_ITEMS = 100_000  # prompts in one list: more than any prompt set, far less than fills the memory


def category_of(name: str) -> str:
    """The task a list's name stands for: ``math_prompts_it`` → ``math``, ``prompts_logic`` → ``logic``."""
    stem = re.sub(r"_(?:it|pt)$", "", name.lower())
    return re.sub(r"(?:^prompts_|_prompts$)", "", stem) or name


def read_module(path: Path, source: str) -> dict[str, list[Item]]:
    """Every list the module defines, by name, each item with its category.

    Args:
        path: the module's file (named in errors).
        source: its text.

    Raises:
        ConfigError: the file does not parse, or holds something other than docstrings, imports,
            lists of string literals and ``+`` of lists defined above it, or a list of more than
            :data:`MAX_ITEMS` items.
    """
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise ConfigError(KEY, f"{path}: not a Python file that parses ({exc})") from None
    lists: dict[str, list[Item]] = {}
    for node in tree.body:
        if isinstance(node, _IGNORED) or _is_docstring(node):
            continue
        target, value = _assignment(node)
        if target is None:
            _refuse(path, node, "only assignments of lists are read")
        lists[target] = _items(path, value, lists, target)
    return lists


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id, node.value
    return None, None


def _items(path: Path, value: ast.expr, lists: dict[str, list[Item]], target: str) -> list[Item]:
    """The items of one list expression: a literal list, a known name, or ``+`` of those."""
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
        left, right = (_part(path, side, lists, target) for side in (value.left, value.right))
        if len(left) + len(right) > MAX_ITEMS:  # a list doubled again and again would fill the memory
            _refuse(path, value, f"{target} would hold more than {MAX_ITEMS:,} prompts")
        return left + right
    if isinstance(value, (ast.List, ast.Tuple)):
        return [(_string(path, element, target), None) for element in value.elts]
    _refuse(path, value, f"{target} is not a list of string literals, nor a + of lists defined above")


def _part(path: Path, value: ast.expr, lists: dict[str, list[Item]], target: str) -> list[Item]:
    """One operand of a ``+``: its items, each tagged with the operand's name as its category."""
    if isinstance(value, ast.Name):
        if value.id not in lists:
            _refuse(path, value, f"{target} adds {value.id}, which is not a list defined above it")
        return [(text, category or category_of(value.id)) for text, category in lists[value.id]]
    return _items(path, value, lists, target)


def _string(path: Path, node: ast.expr, target: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    _refuse(path, node, f"an item of {target} is not a string literal ({ast.unparse(node)[:40]})")


def _refuse(path: Path, node: ast.AST, problem: str) -> None:
    raise ConfigError(KEY, f"{path}, line {node.lineno}: {problem}; the file is read, never run")
