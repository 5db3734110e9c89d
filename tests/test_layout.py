"""The code's shape stays as the architecture section of the README says (issue 13's limits).

No function in ``jaxrl/algos`` or ``jaxrl/run`` is longer than 80 lines (a nested function counts toward the one
that contains it), no algorithm module is longer than 250 lines, and the README's table of lines per algorithm
module is the tree's (regenerate it with ``python tests/test_layout.py``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 250
TABLE_START = "<!-- lines per algorithm module: python tests/test_layout.py -->"
TABLE_END = "<!-- end of lines per algorithm module -->"


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is {length} lines")
    return out


def _algorithm_modules() -> dict[str, int]:
    """``algos/<family>/<module>.py`` -> its number of lines (package ``__init__`` files left out)."""
    return {
        str(p.relative_to(ROOT / "jaxrl")): len(p.read_text().splitlines())
        for p in _python_files("jaxrl/algos")
        if p.name != "__init__.py"
    }


def lines_table() -> str:
    """The README's table: one row per family folder, each module with its lines."""
    rows = ["| folder | modules (lines) |", "| --- | --- |"]
    by_folder: dict[str, list[str]] = {}
    for rel, n in _algorithm_modules().items():
        folder, _, name = rel.rpartition("/")
        by_folder.setdefault(folder, []).append(f"`{name[:-3]}` {n}")
    for folder, items in by_folder.items():
        rows.append(f"| `{folder}/` | {', '.join(items)} |")
    return "\n".join(rows)


def test_no_long_function_in_algos_or_run():
    long = [line for p in _python_files("jaxrl/algos", "jaxrl/run") for line in _long_functions(p)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_no_algorithm_module_over_the_limit():
    big = {rel: n for rel, n in _algorithm_modules().items() if n > MAX_MODULE_LINES}
    assert not big, f"algorithm modules over {MAX_MODULE_LINES} lines: {big}"


def test_readme_lists_lines_per_algorithm_module():
    readme = (ROOT / "README.md").read_text()
    match = re.search(re.escape(TABLE_START) + r"\n(.*?)\n" + re.escape(TABLE_END), readme, re.S)
    assert match, f"README.md has no table between {TABLE_START!r} and {TABLE_END!r}"
    assert match.group(1).strip() == lines_table(), "README's lines-per-module table is stale: run this file"


if __name__ == "__main__":
    readme_path = ROOT / "README.md"
    text = readme_path.read_text()
    new = f"{TABLE_START}\n{lines_table()}\n{TABLE_END}"
    pattern = re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END)
    text = re.sub(pattern, lambda _: new, text, flags=re.S) if TABLE_START in text else text + "\n" + new + "\n"
    readme_path.write_text(text)
    print(new)
