"""Export the code a lecture teaches into ``course_utils.taught``: one home for taught code (d2l's ``#@save``).

A lecture writes a function or class once, in the cell that teaches it. When the helper package (a widget,
an assignment's locked helper cell) needs the same code, the cell's first line is the marker ``# @save``
and this tool copies every marked cell of ``lectures/<name>.ipynb``, in notebook order, into
``course_utils/taught/<name in lower case>.py``, preceded by the imports those cells use (taken from the
notebook's own import lines). The package then imports from there, so it runs the very code the student
reads. The generated files are committed (the package works without the notebooks, e.g. on Colab).

    python -m tools.export            # (re)write course_utils/taught/*.py
    python -m tools.export --check    # exit 1 and name the stale files (run by tests/test_export.py)

Edit the notebook cell, never the generated file: tests/test_export.py fails while the two differ.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LECTURES = "lectures"
PACKAGE_DIR = Path("course_utils") / "taught"
MARKER = "# @save"  # the first line of an exported cell (d2l writes "#@save"; both are read)
FIRST_PARTY = ("course_utils",)


class ExportError(ValueError):
    """A marked cell cannot be exported as it stands (the message says which cell and what to change)."""


@dataclass(frozen=True)
class SavedCell:
    cell_id: str
    source: str  # the cell without its marker line


def is_marked(source: str) -> bool:
    """True when the cell's first line is the export marker (``# @save`` or ``#@save``)."""
    first = source.split("\n", 1)[0].strip()
    return first.replace(" ", "") == MARKER.replace(" ", "")


def saved_cells(notebook) -> list[SavedCell]:
    """The marked code cells of a notebook, marker line removed, in notebook order."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and is_marked(cell.source):
            body = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
            cells.append(SavedCell(cell.get("id", f"cell{index}"), body.strip("\n")))
    return cells


def module_name(notebook_path: Path) -> str:
    """``lectures/L05_optimisers.ipynb`` -> ``l05_optimisers`` (the module under ``course_utils.taught``)."""
    return notebook_path.stem.lower()


def _free_names(code: str) -> set[str]:
    """Global names the code reads but does not bind at module level (scopes resolved with ``symtable``)."""
    table = symtable.symtable(code, "<saved cells>", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    free = {s.get_name() for s in table.get_symbols() if s.is_referenced()}

    def visit(t: symtable.SymbolTable) -> None:
        for child in t.get_children():
            free.update(s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced())
            visit(child)

    visit(table)
    return free - bound


def _notebook_imports(notebook) -> dict[str, ast.stmt]:
    """Bound name -> a one-name import statement, from every top-level import line of the notebook's cells."""
    imports: dict[str, ast.stmt] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse("\n".join(ln for ln in cell.source.split("\n") if not ln.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    imports[(alias.asname or alias.name).split(".")[0]] = ast.Import(names=[alias])
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                for alias in node.names:
                    imports[alias.asname or alias.name] = ast.ImportFrom(module=node.module, names=[alias], level=0)
    return imports


def _section(module: str) -> int:
    """ruff's (isort's) import sections: 0 standard library, 1 third party, 2 first party."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names:
        return 0
    return 2 if top in FIRST_PARTY else 1


def _ruff_order(name: str) -> tuple[int, str]:
    """ruff's order of imported names: CONSTANTS, then Classes, then the rest."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def _import_block(statements: list[ast.stmt]) -> str:
    """The import lines in ruff's order: sections, plain imports before from-imports, sorted, merged."""
    plain: dict[int, set[str]] = {}
    froms: dict[int, dict[str, set[str]]] = {}
    for st in statements:
        if isinstance(st, ast.Import):
            alias = st.names[0]
            text = alias.name + (f" as {alias.asname}" if alias.asname else "")
            plain.setdefault(_section(alias.name), set()).add(text)
        else:
            alias = st.names[0]
            text = alias.name + (f" as {alias.asname}" if alias.asname else "")
            froms.setdefault(_section(st.module), {}).setdefault(st.module, set()).add(text)
    blocks = []
    for section in (0, 1, 2):
        lines = [f"import {t}" for t in sorted(plain.get(section, ()), key=str.lower)]
        for module, names in sorted(froms.get(section, {}).items()):
            lines.append(f"from {module} import {', '.join(sorted(names, key=_ruff_order))}")
        if lines:
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render(notebook, notebook_path: Path) -> str | None:
    """The text of the module exported from ``notebook`` (None: the notebook has no marked cell)."""
    cells = saved_cells(notebook)
    if not cells:
        return None
    rel = notebook_path.as_posix()
    code = "\n\n\n".join(c.source for c in cells)
    try:
        free = _free_names(code)
    except SyntaxError as err:
        raise ExportError(f"{rel}: the cells marked {MARKER!r} are not valid Python together ({err}).") from err
    available = _notebook_imports(notebook)
    needed = sorted(free - set(dir(builtins)))
    missing = [name for name in needed if name not in available]
    if missing:
        raise ExportError(
            f"{rel}: the cells marked {MARKER!r} use {', '.join(missing)}, which neither they nor an import line "
            f"of the notebook define. Mark the cell that defines it with {MARKER!r} too, or import it in the cell."
        )
    header = (
        f'"""Code taught in {rel}: its cells marked ``{MARKER}``, exported by ``python -m tools.export``.\n\n'
        "GENERATED FILE, do not edit: change the notebook cell and run ``python -m tools.export``\n"
        "(tests/test_export.py fails while this file and the cells differ).\n"
        '"""\n'
    )
    imports = _import_block([available[name] for name in needed])
    parts = [header, imports + "\n" if imports else ""]
    body = "\n\n\n".join(f"# {rel}, cell {c.cell_id}\n{c.source}" for c in cells)
    return "\n".join(p for p in parts if p) + "\n\n" + body + "\n"


def exports(root: Path = ROOT) -> dict[Path, str]:
    """Generated file (relative to ``root``) -> its text, for every lecture with marked cells."""
    out = {}
    for path in sorted((root / LECTURES).glob("*.ipynb")):
        rel = path.relative_to(root)
        text = render(nbformat.read(path, as_version=4), rel)
        if text is not None:
            out[PACKAGE_DIR / f"{module_name(rel)}.py"] = text
    return out


def stale(root: Path = ROOT) -> list[str]:
    """What ``--check`` reports: generated files that differ from their cells, are missing, or lost their cells."""
    expected = exports(root)
    problems = []
    for rel, text in expected.items():
        path = root / rel
        if not path.exists():
            problems.append(f"{rel} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{rel} differs from the cells marked {MARKER!r}")
    for path in sorted((root / PACKAGE_DIR).glob("*.py")):
        rel = path.relative_to(root)
        if rel.name != "__init__.py" and rel not in expected:
            problems.append(f"{rel} has no marked cells any more (delete it)")
    return problems


def write(root: Path = ROOT) -> list[Path]:
    """Write every generated file whose text changed; return the ones written."""
    written = []
    (root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    for rel, text in exports(root).items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(rel)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale generated files (exit 1 if any)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale()
            for p in problems:
                print(f"stale: {p}. Run `python -m tools.export`.")
            return 1 if problems else 0
        for rel in write():
            print(f"wrote {rel}")
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
