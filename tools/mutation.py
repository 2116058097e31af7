"""Mutation testing of the assignments' tests (visible and hidden): do they catch plausible bugs?

For every solution cell of an instructor notebook (``solutions/<A>/<A>.ipynb``) this module generates
*mutants*: copies of the reference answer with one small, plausible bug (a flipped sign, an off-by-one
padding, a dropped bias or gradient term, a missing ``.T``, the wrong axis, ``mean`` for ``sum``, a
skipped ``zero_grad``, train/eval swapped, ReLU replaced by the identity, a dropped layer, ...). Each
mutant runs against the notebook's test cells that depend on the mutated cell, hidden tests included.
A mutant is *killed* when at least one of those test cells raises; it *survives* when all of them pass,
which means a student with that bug would earn full marks.

How it runs, fast enough for CI (no nbgrader, no Jupyter kernel):

* the notebook's code cells are analysed once: which global names each cell defines and reads
  (``symtable``), hence which cells each test cell depends on, transitively;
* one worker process per assignment executes the reference notebook once, skipping every cell that
  no test needs (plots, demos, the written answers);
* each mutant runs in a ``fork()`` of that worker: the mutated cell is executed over the reference
  namespace (its old names deleted first), the cells that depend on it are re-executed lazily, and
  the dependent test cells run cheapest first until one fails. A mutant that runs past its time limit
  counts as killed (the grader's per-cell time limit would fail it too).

Equivalent mutants (same behaviour as the reference, or a change the text does not ask students to
avoid) are listed with a reason in :data:`ACCEPTED`; :func:`main` and ``tests/test_mutation.py`` fail on
any other survivor.

Command line::

    COURSE_FAST=1 COURSE_OFFLINE=1 .venv/bin/python -m tools.mutation            # all assignments
    COURSE_FAST=1 COURSE_OFFLINE=1 .venv/bin/python -m tools.mutation A1 A3 -v   # some, with every mutant
"""

from __future__ import annotations

import argparse
import ast
import builtins
import io
import json
import os
import re
import select
import signal
import symtable
import sys
import tempfile
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools import markers

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ["A1_backprop", "A2_convolution", "A3_lenet5", "A4_alexnet_vgg", "A5_nin_googlenet", "A6_resnet18"]
BUILTINS = set(dir(builtins))
TARGET_SCORE = 0.95

# ------------------------------------------------------------------------------------------------
# Accepted survivors: mutant key -> why it is acceptable (an equivalent mutant, or behaviour the
# assignment text does not ask for). Keys are printed by `python -m tools.mutation -v`.
# ------------------------------------------------------------------------------------------------
_DEFAULT = "the dropped keyword had its default value: same behaviour"
_LAST = "after the loop c_in == c_out: same value"
ACCEPTED: dict[str, str] = {
    # A2
    "conv_forward_naive: out = np.zeros((N, n_filters, H_out, W_out)) [.zeros -> .ones]": "every entry of out is overwritten by the loops: same result",
    "conv_forward_naive: x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) [0 -> 1] #2": "pads one extra image after the batch, which no loop reads: same result",
    "im2col: blocks = np.empty((C, field_height, field_width, N, H_out, W_out), dtype=x.dtype) [drop keyword dtype]": "float64 cols for any input: the same numbers; the text does not ask to keep float32 inputs float32",
    # A3
    "a3-build_lenet5: nn.AvgPool2d(kernel_size=2, stride=2),  # S2: 6 x 14 x 14 [drop keyword stride]": "AvgPool2d's stride defaults to its kernel size (2): same layer",
    "a3-build_lenet5: nn.AvgPool2d(kernel_size=2, stride=2),  # S4: 16 x 5 x 5 [drop keyword stride]": "AvgPool2d's stride defaults to its kernel size (2): same layer",
    # A4
    "a4-init_and_stds: model.train(was_training) [delete Expr statement]": "restoring the caller's mode is not asked for by the text (that unfair check was removed)",
    'a4-init_and_stds: nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu") [drop keyword mode]': "mode='fan_in' is kaiming_normal_'s default: "
    + _DEFAULT,
    (
        'a4-init_and_stds: nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu") '
        "[drop keyword nonlinearity]"
    ): "the default 'leaky_relu' with slope 0 has the gain sqrt(2) of 'relu': same weights",
    "a4-init_and_stds: nn.init.normal_(m.weight, mean=0.0, std=0.01) [drop keyword mean]": _DEFAULT,
    (
        "a4-models: layers = [nn.Conv2d(c_in, c_out, kernel_size, stride=1, padding=kernel_size // 2, "
        "bias=not batch_norm)] [drop keyword stride]"
    ): _DEFAULT,
    "a4-models: nn.Linear(c_in, hidden), [c_in -> c_out]": _LAST,
    # A5
    "a5-macs_and_1x1: model(torch.zeros(1, *input_shape)) [.zeros -> .ones]": "the number of MACs does not depend on the input's values",
    "a5-macs_and_1x1: model(torch.zeros(1, *input_shape)) [1 -> 2]": "a batch of two: the hooks count output[0], one image, so the count is the same",
    "a5-nin: nin_block(b2[-1], b3, 3), [1 -> 0]": "b2 = (192, 192, 192): its first and last entries are equal",
    "a5-nin: nin_block(b2[-1], b3, 3), [drop unary USub]": "b2 = (192, 192, 192): b2[1] == b2[-1]",
    (
        "a5-nin: self.head = nn.Sequential(nn.Conv2d(b3[-1], num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()) "
        "[1 -> 0] #3"
    ): "b3 = (192, 192): b3[0] == b3[-1]",
    (
        "a5-nin: self.head = nn.Sequential(nn.Conv2d(b3[-1], num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()) "
        "[drop unary USub]"
    ): "b3 = (192, 192): b3[1] == b3[-1]",
    # A6
    (
        "a6-augment_and_schedule: return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(p=0.5)]) "
        "[drop keyword p]"
    ): "RandomHorizontalFlip's p defaults to 0.5: " + _DEFAULT,
    "a6-blocks: self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False) [drop keyword stride]": _DEFAULT,
    "a6-blocks: self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False) [drop keyword stride] #2": _DEFAULT,
    "a6-resnet18: self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False) [drop keyword stride]": _DEFAULT,
    "a6-resnet18: self.bn_final = nn.BatchNorm2d(c_in) if preact else None [c_in -> c_out]": _LAST,
    "a6-resnet18: self.fc = nn.Linear(c_in, num_classes) [c_in -> c_out]": _LAST,
}

# Solution cells that are not mutated at all, with the reason.
SKIP_CELLS: dict[str, str] = {
    "hyperparameters": "A1's hyperparameters are the student's choice: any values that reach the accuracy are right",
}


# ------------------------------------------------------------------------------------------------
# Reading a notebook
# ------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One code cell of the instructor notebook, as the runner sees it."""

    index: int
    kind: str  # "test", "solution" or "other"
    cell_id: str  # nbgrader grade_id, or "cell<index>"
    source: str  # what runs: solution markers removed, hidden tests kept
    solution_lines: set[int] = field(default_factory=set)  # 1-based lines of `source` inside BEGIN/END SOLUTION
    defines: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)


def _runnable(source: str) -> tuple[str, set[int]]:
    """Drop marker lines and IPython magics; return the code and the lines that were solution code."""
    out, solution = [], set()
    for parsed in markers.classify(source):  # the one marker parser (tools.markers)
        if parsed.marker:
            continue
        line = parsed.text
        if line.lstrip().startswith(("%", "!")):
            line = line[: len(line) - len(line.lstrip())] + "pass"
        out.append(line)
        if parsed.region == markers.SOLUTION:
            solution.add(len(out))
    return "\n".join(out), solution


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names the cell binds at top level, global names it reads that it does not bind itself)."""
    table = symtable.symtable(source, "<cell>", "exec")
    defines = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    defines |= {t.get_name() for t in table.get_children() if t.get_type() in ("function", "class")}
    reads = _read_before_bound(source) | ({s.get_name() for s in table.get_symbols() if s.is_referenced()} - defines)

    def visit(t):
        for s in t.get_symbols():
            if (
                s.is_referenced()
                and (s.is_global() or (s.is_free() and t.get_type() == "class"))
                and s.get_name() not in defines
            ):  # bound by the cell itself before the call, as a rule
                reads.add(s.get_name())
            if s.is_declared_global() and s.is_assigned():
                defines.add(s.get_name())
        for child in t.get_children():
            visit(child)

    for child in table.get_children():
        visit(child)
    return defines, reads - BUILTINS


def _read_before_bound(source: str) -> set[str]:
    """Top-level names a cell reads before it binds them (``x = x + 1``, ``data = data.subset(10)``)."""
    bound, reads = set(), set()

    def loads(node):
        if node is None or isinstance(
            node,
            (
                ast.FunctionDef,
                ast.AsyncFunctionDef,
                ast.ClassDef,
                ast.Lambda,
                ast.ListComp,
                ast.SetComp,
                ast.DictComp,
                ast.GeneratorExp,
            ),
        ):
            return  # own scopes: symtable covers them
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            reads.add(node.id)
        for child in ast.iter_child_nodes(node):
            loads(child)

    def binds(node):
        if node is not None:
            bound.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))

    def block(stmts):
        for stmt in stmts:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                loads(stmt.value)
                for target in getattr(stmt, "targets", [getattr(stmt, "target", None)]):
                    binds(target)
            elif isinstance(stmt, ast.AugAssign):
                loads(stmt.value)
                loads(ast.Name(stmt.target.id, ast.Load()) if isinstance(stmt.target, ast.Name) else stmt.target)
                binds(stmt.target)
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                loads(stmt.iter)
                binds(stmt.target)
                block(stmt.body + stmt.orelse)
            elif isinstance(stmt, (ast.While, ast.If)):
                loads(stmt.test)
                block(stmt.body + stmt.orelse)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                for item in stmt.items:
                    loads(item.context_expr)
                    binds(item.optional_vars)
                block(stmt.body)
            elif isinstance(stmt, ast.Try):
                block(stmt.body)
                for handler in stmt.handlers:
                    loads(handler.type)
                    if handler.name:
                        bound.add(handler.name)
                    block(handler.body)
                block(stmt.orelse + stmt.finalbody)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for expr in stmt.decorator_list:
                    loads(expr)
                bound.add(stmt.name)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in stmt.names)
            else:
                loads(stmt)
                binds(stmt)

    block(ast.parse(source).body)
    return reads


def read_cells(assignment: str, root: Path = ROOT) -> list[Cell]:
    """The code cells of ``solutions/<assignment>/<assignment>.ipynb`` with their names and kinds."""
    nb = json.loads((root / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    cells = []
    for i, raw in enumerate(nb["cells"]):
        if raw["cell_type"] != "code":
            continue
        meta = raw.get("metadata", {}).get("nbgrader", {})
        if "colab-setup" in raw.get("metadata", {}).get("tags", []):
            continue
        kind = "test" if meta.get("grade") else "solution" if meta.get("solution") else "other"
        source, solution = _runnable("".join(raw["source"]))
        defines, reads = _names(source)
        cells.append(Cell(i, kind, meta.get("grade_id") or f"cell{i}", source, solution, defines, reads))
    return cells


def dependencies(cells: list[Cell]) -> dict[str, set[str]]:
    """cell_id -> ids of the earlier cells that provide the names it reads (direct dependencies).

    A name comes from the last earlier cell that binds it; non-test cells never depend on test cells
    (names a test binds are the test's own scratch variables)."""
    deps: dict[str, set[str]] = {}
    for pos, cell in enumerate(cells):
        deps[cell.cell_id] = set()
        for name in cell.reads:
            for earlier in reversed(cells[:pos]):
                if name in earlier.defines and (cell.kind == "test" or earlier.kind != "test"):
                    deps[cell.cell_id].add(earlier.cell_id)
                    break
    return deps


def closure(ids: set[str], deps: dict[str, set[str]]) -> set[str]:
    """ids and everything they depend on, transitively."""
    seen, todo = set(), list(ids)
    while todo:
        cid = todo.pop()
        if cid not in seen:
            seen.add(cid)
            todo.extend(deps[cid])
    return seen


def dependents(cell_id: str, deps: dict[str, set[str]]) -> set[str]:
    """Every cell that depends on ``cell_id``, transitively (not including it)."""
    out, changed = set(), True
    while changed:
        changed = False
        for cid, ds in deps.items():
            if cid not in out and cid != cell_id and (cell_id in ds or ds & out):
                out.add(cid)
                changed = True
    return out


# ------------------------------------------------------------------------------------------------
# Mutation operators (AST based)
# ------------------------------------------------------------------------------------------------

BINOP_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.MatMult: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Pow: ast.Mult,
}
CMP_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
# attribute or bare-name swaps: the classic confusions
NAME_SWAPS = {
    "sum": "mean",
    "mean": "sum",
    "max": "min",
    "min": "max",
    "argmax": "argmin",
    "maximum": "minimum",
    "AvgPool2d": "MaxPool2d",
    "MaxPool2d": "AvgPool2d",
    "ReLU": "Tanh",
    "Tanh": "ReLU",
    "relu": "sigmoid",
    "train": "eval",
    "eval": "train",
    "no_grad": "enable_grad",
    "zeros": "ones",
    "zeros_like": "ones_like",
    "kaiming_normal_": "xavier_normal_",
    "normal_": "uniform_",
    "zeros_": "ones_",
    "tanh": "sigmoid",
    "BatchNorm2d": "InstanceNorm2d",
    "Identity": "ReLU",
    "OneCycleLR": "CosineAnnealingLR",
    "std": "var",
    "RandomHorizontalFlip": "RandomVerticalFlip",
    "cross_entropy": "nll_loss",
    "requires_grad": "is_leaf",
}
# variables that come in pairs: swapping them is a bug that square test cases cannot see
PAIRS = [
    ("HH", "WW"),
    ("H", "W"),
    ("H_out", "W_out"),
    ("pool_height", "pool_width"),
    ("kh", "kw"),
    ("field_height", "field_width"),
    ("c_in", "c_out"),
    ("n_in", "n_out"),
    ("k", "l"),
    ("i", "j"),
    ("c1", "c3"),
    ("c3", "c5"),
    ("c3_reduce", "c5_reduce"),
    ("rows", "cols"),
    ("W1", "W2"),
    ("b1", "b2"),
]
PARTNER = {a: b for a, b in PAIRS} | {b: a for a, b in PAIRS}
ACTIVATION_CALLS = {"relu", "tanh", "sigmoid", "ReLU", "Tanh"}
DROP_CALL_METHODS = {"transpose", "permute", "reshape", "flatten", "detach", "clone", "T"}
KEEP_KEYWORDS = {"inplace"}  # dropping inplace=True changes nothing observable: not a mutant


@dataclass
class Mutant:
    assignment: str
    cell_id: str
    key: str  # stable name: "<cell>: <line> [<what changed>]"
    line: int
    source: str  # the whole mutated cell

    def describe(self) -> str:
        return self.key


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        f = node.func
        return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    return None


def _candidates(node: ast.AST, parent: ast.AST | None, bound: set[str]):
    """Yield (description, apply) for every mutation of ``node``; ``apply(node, parent)`` edits a fresh tree."""
    if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS:
        new = BINOP_SWAPS[type(node.op)]
        yield f"{type(node.op).__name__} -> {new.__name__}", lambda n, p, new=new: setattr(n, "op", new())
        if isinstance(node.op, (ast.Add, ast.Sub)):  # a missing term: keep one side
            yield "drop right operand", lambda n, p: _replace(n, p, n.left)
            if isinstance(node.op, ast.Add):
                yield "drop left operand", lambda n, p: _replace(n, p, n.right)
    if isinstance(node, ast.AugAssign):
        if type(node.op) in BINOP_SWAPS:
            new = BINOP_SWAPS[type(node.op)]
            yield f"augmented {type(node.op).__name__} -> {new.__name__}", lambda n, p, new=new: setattr(n, "op", new())
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        yield f"drop unary {type(node.op).__name__}", lambda n, p: _replace(n, p, n.operand)
    if isinstance(node, ast.Constant) and not isinstance(node.value, bool):
        if isinstance(node.value, int):
            if not (node.value == 1 and isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub)):
                # (-1 -> -2 is no mutant: NumPy and PyTorch read any negative size as "infer this one")
                yield f"{node.value} -> {node.value + 1}", lambda n, p: setattr(n, "value", n.value + 1)
            if node.value != 0:
                yield f"{node.value} -> {node.value - 1}", lambda n, p: setattr(n, "value", n.value - 1)
        elif isinstance(node.value, float):
            new = 2 * node.value if node.value else 1.0
            yield f"{node.value} -> {new}", lambda n, p, new=new: setattr(n, "value", new)
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield f"{node.value} -> {not node.value}", lambda n, p: setattr(n, "value", not n.value)
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in CMP_SWAPS:
                new = CMP_SWAPS[type(op)]
                yield (f"{type(op).__name__} -> {new.__name__}", lambda n, p, k=k, new=new: n.ops.__setitem__(k, new()))
    if isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{type(node.op).__name__} -> {new.__name__}", lambda n, p, new=new: setattr(n, "op", new())
    if isinstance(node, ast.Call):
        for k, kw in enumerate(node.keywords):
            if kw.arg and kw.arg not in KEEP_KEYWORDS:
                yield f"drop keyword {kw.arg}", lambda n, p, k=k: n.keywords.pop(k)
        name = _call_name(node)
        if name in ACTIVATION_CALLS and node.args and not isinstance(node.func, ast.Name):
            yield f"{name}(x) -> x", lambda n, p: _replace(n, p, n.args[0])
        if name in ("ReLU", "Tanh"):
            yield f"{name}() -> Identity()", lambda n, p: setattr(n.func, "attr", "Identity")
        if name in ("maximum",) and len(node.args) == 2:
            yield "maximum(x, 0) -> x", lambda n, p: _replace(n, p, n.args[0])
        if isinstance(node.func, ast.Attribute) and name in DROP_CALL_METHODS:
            yield f"drop .{name}(...)", lambda n, p: _replace(n, p, n.func.value)
        if (
            name
            and name.endswith("Sequential")
            and len(node.args) >= 2
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            for k in range(len(node.args)):
                yield f"drop layer {k} of Sequential", lambda n, p, k=k: n.args.pop(k)
    if isinstance(node, ast.List) and len(node.elts) >= 2 and not any(isinstance(e, ast.Starred) for e in node.elts):
        for k in range(len(node.elts)):
            yield f"drop list element {k}", lambda n, p, k=k: n.elts.pop(k)
    if isinstance(node, ast.Attribute) and node.attr == "T":
        yield "drop .T", lambda n, p: _replace(n, p, n.value)
    if isinstance(node, ast.Attribute) and node.attr in NAME_SWAPS:
        new = NAME_SWAPS[node.attr]
        yield f".{node.attr} -> .{new}", lambda n, p, new=new: setattr(n, "attr", new)
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        if node.id in ("max", "min", "sum"):
            new = {"max": "min", "min": "max", "sum": "len"}[node.id]
            yield f"{node.id} -> {new}", lambda n, p, new=new: setattr(n, "id", new)
        if node.id in PARTNER and PARTNER[node.id] in bound:
            new = PARTNER[node.id]
            yield f"{node.id} -> {new}", lambda n, p, new=new: setattr(n, "id", new)
    # statement deletions: a skipped update, a missing term, a dropped layer or check
    if isinstance(node, ast.stmt) and isinstance(
        parent, (ast.Module, ast.FunctionDef, ast.For, ast.If, ast.With, ast.Try, ast.ClassDef)
    ):
        deletable = (
            isinstance(node, (ast.AugAssign, ast.If, ast.For, ast.Raise, ast.With))
            or (isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant))
            or (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id in bound for t in node.targets))
        )
        if deletable:
            yield f"delete {type(node).__name__} statement", _delete_stmt


def _replace(node: ast.AST, parent: ast.AST, new: ast.AST) -> None:
    for name, value in ast.iter_fields(parent):
        if value is node:
            setattr(parent, name, new)
            return
        if isinstance(value, list):
            for k, item in enumerate(value):
                if item is node:
                    value[k] = new
                    return
    raise RuntimeError("node not found in its parent")


def _delete_stmt(node: ast.AST, parent: ast.AST) -> None:
    for _, value in ast.iter_fields(parent):
        if isinstance(value, list) and any(item is node for item in value):
            k = next(k for k, item in enumerate(value) if item is node)
            value[k] = ast.Pass()
            return
    raise RuntimeError("statement not found in its parent")


def _bound_names(tree: ast.AST) -> set[str]:
    """Names assigned anywhere in the cell (targets, parameters, loop variables)."""
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
    return out


def mutants_of(assignment: str, cell: Cell) -> list[Mutant]:
    """Every mutant of one solution cell, deduplicated by the code they produce."""
    tree = ast.parse(cell.source)
    reference = ast.unparse(tree)
    parents = _parents(tree)
    bound = _bound_names(tree)
    lines = cell.source.split("\n")
    nodes = list(ast.walk(tree))
    in_messages = {id(n) for f in nodes if isinstance(f, ast.JoinedStr) for n in ast.walk(f)}
    in_messages |= {
        id(n) for kw in nodes if isinstance(kw, ast.keyword) and kw.arg in KEEP_KEYWORDS for n in ast.walk(kw)
    }  # inplace=True -> False changes nothing observable
    out, seen, counts = [], {reference}, {}
    for k, node in enumerate(nodes):
        line = getattr(node, "lineno", None)
        if line is None or line not in cell.solution_lines or id(node) in in_messages:
            continue  # outside the student's part, or inside the text of a message
        if isinstance(node, ast.stmt) and node.end_lineno not in cell.solution_lines:
            continue  # a statement that reaches outside the student's part
        for what, apply in _candidates(node, parents.get(node), bound):
            fresh = ast.parse(cell.source)
            fresh_nodes = list(ast.walk(fresh))
            fresh_parents = _parents(fresh)
            target = fresh_nodes[k]
            try:
                apply(target, fresh_parents.get(target))
                ast.fix_missing_locations(fresh)
                code = ast.unparse(fresh)
            except Exception:  # an operator that does not apply here
                continue
            if code in seen:
                continue
            seen.add(code)
            base = f"{cell.cell_id}: {lines[line - 1].strip()} [{what}]"
            counts[base] = counts.get(base, 0) + 1
            key = base if counts[base] == 1 else f"{base} #{counts[base]}"
            out.append(Mutant(assignment, cell.cell_id, key, line, code))
    return out


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------


@dataclass
class Result:
    key: str
    cell_id: str
    status: str  # "killed", "survived", "timeout", "accepted" (listed equivalent mutant, not run)
    killed_by: str | None = None
    error: str | None = None
    seconds: float = 0.0
    tests: list[str] = field(default_factory=list)


@dataclass
class Report:
    assignment: str
    results: list[Result]
    baseline_ok: bool
    baseline_error: str | None
    seconds: float

    @property
    def survivors(self) -> list[Result]:
        return [r for r in self.results if r.status == "survived"]

    @property
    def unexpected(self) -> list[Result]:
        return [r for r in self.survivors if r.key not in ACCEPTED]

    @property
    def accepted(self) -> list[Result]:
        return [r for r in self.results if r.status == "accepted" or (r.status == "survived" and r.key in ACCEPTED)]

    @property
    def killed(self) -> int:
        return sum(r.status in ("killed", "timeout") for r in self.results)

    def score(self, adjusted: bool = True) -> float:
        """Killed / all mutants; with ``adjusted``, the accepted (equivalent) mutants are left out."""
        total = len(self.results) - (len(self.accepted) if adjusted else 0)
        return self.killed / total if total else 1.0


def _silence():
    """Send the notebook's printing to a sink (the worker's own stdout carries results)."""
    sink = io.StringIO()
    return redirect_stdout(sink), redirect_stderr(sink)


def _exec(cell: Cell, source: str, ns: dict) -> str | None:
    """Execute one cell like a kernel would; return the error text (last line) or None."""
    for name in cell.defines - cell.reads:  # stale values must not survive a failing re-run
        ns.pop(name, None)
    out, err = _silence()
    try:
        with out, err:
            exec(compile(source, f"<{cell.cell_id}>", "exec"), ns)
        return None
    except BaseException as exc:  # SystemExit and KeyboardInterrupt fail the cell, like in a kernel
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        try:
            import matplotlib.pyplot as plt

            plt.close("all")
        except Exception:
            pass


class Plan:
    """What to run for one assignment: the cells, their dependencies and the test cells' costs."""

    def __init__(self, assignment: str, root: Path = ROOT):
        self.assignment = assignment
        self.cells = read_cells(assignment, root)
        self.by_id = {c.cell_id: c for c in self.cells}
        self.deps = dependencies(self.cells)
        self.tests = [c for c in self.cells if c.kind == "test"]
        self.needed = closure({t.cell_id for t in self.tests}, self.deps)
        self.cost: dict[str, float] = {}

    def baseline_cells(self) -> list[Cell]:
        """Every non-test cell some test needs, in notebook order."""
        return [c for c in self.cells if c.cell_id in self.needed and c.kind != "test"]

    def affected_tests(self, cell_id: str) -> list[Cell]:
        down = dependents(cell_id, self.deps)
        return [t for t in self.tests if t.cell_id in down]


def _run_tests(
    plan: Plan, ns: dict, tests: list[Cell], stale: set[str], order_by_cost: bool
) -> tuple[str | None, str | None]:
    """Run test cells (re-running stale prerequisite cells first); (failing test id, error) or (None, None)."""

    def prerequisites(test: Cell) -> list[str]:
        needs = closure({test.cell_id}, plan.deps)
        return [c.cell_id for c in plan.cells if c.cell_id in stale and c.cell_id in needs]

    if order_by_cost:  # cheapest first, counting the stale cells a test needs re-run
        tests = sorted(
            tests,
            key=lambda t: plan.cost.get(t.cell_id, 0.0) + sum(plan.cost.get(cid, 1.0) for cid in prerequisites(t)),
        )
    for test in tests:
        for cid in prerequisites(test):
            _exec(plan.by_id[cid], plan.by_id[cid].source, ns)
            stale.discard(cid)
        t0 = time.perf_counter()
        error = _exec(test, test.source, ns)
        plan.cost.setdefault(test.cell_id, time.perf_counter() - t0)
        if error:
            return test.cell_id, error
    return None, None


def _child(plan: Plan, ns: dict, mutant: Mutant | None, write_fd: int) -> None:
    """In a forked worker: apply the mutant, run the dependent tests, write one JSON line, exit."""
    t0 = time.perf_counter()
    try:
        if mutant is None:
            tests, stale = plan.tests, set()
            failed, error = _run_tests(plan, ns, tests, stale, order_by_cost=False)
            result = {
                "status": "survived" if failed is None else "killed",
                "killed_by": failed,
                "error": error,
                "cost": plan.cost,
            }
        else:
            cell = plan.by_id[mutant.cell_id]
            tests = plan.affected_tests(cell.cell_id)
            stale = (dependents(cell.cell_id, plan.deps) & plan.needed) - {t.cell_id for t in tests}
            own_error = _exec(cell, mutant.source, ns)
            failed, error = _run_tests(plan, ns, tests, stale, order_by_cost=True)
            if failed is None and own_error and not tests:
                failed, error = cell.cell_id, own_error
            result = {"status": "survived" if failed is None else "killed", "killed_by": failed, "error": error}
        result["seconds"] = time.perf_counter() - t0
    except BaseException:
        result = {"status": "killed", "killed_by": None, "error": traceback.format_exc()[-300:]}
    os.write(write_fd, (json.dumps(result) + "\n").encode())
    os._exit(0)


def _fork(plan: Plan, ns: dict, mutant: Mutant | None):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        _child(plan, ns, mutant, w)
    os.close(w)
    return pid, r


def _collect(pid: int, fd: int, deadline: float) -> dict:
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill(pid)
            os.close(fd)
            return {"status": "timeout", "killed_by": None, "error": "time limit"}
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    os.close(fd)
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace").strip()
    if not text:
        return {"status": "killed", "killed_by": None, "error": "the test process died"}
    return json.loads(text.splitlines()[-1])


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def run_assignment(
    assignment: str,
    jobs: int = 1,
    timeout: float = 60.0,
    only: str | None = None,
    root: Path = ROOT,
    log=None,
    run_accepted: bool = False,
) -> Report:
    """Run every mutant of one assignment (in this process: the caller should be a fresh worker)."""
    t_start = time.perf_counter()
    _prepare_worker(assignment, root)
    plan = Plan(assignment, root)
    ns: dict = {"__name__": "__main__"}
    for cell in plan.baseline_cells():
        t0 = time.perf_counter()
        error = _exec(cell, cell.source, ns)
        plan.cost[cell.cell_id] = time.perf_counter() - t0
        if error and log:
            log(f"  [{assignment}] reference cell {cell.cell_id} failed: {error}")
    pid, fd = _fork(plan, ns, None)
    base = _collect(pid, fd, time.monotonic() + 20 * timeout)
    plan.cost.update(base.get("cost", {}))
    baseline_ok = base["status"] == "survived"
    mutants = [
        m
        for c in plan.cells
        if c.kind == "solution" and c.solution_lines and c.cell_id not in SKIP_CELLS
        for m in mutants_of(assignment, c)
    ]
    if only:
        mutants = [m for m in mutants if only in m.key]
    results: list[Result] = []
    if not run_accepted:  # known equivalent mutants: listed, not run (they are the slowest: every test runs)
        results += [Result(m.key, m.cell_id, "accepted") for m in mutants if m.key in ACCEPTED]
        mutants = [m for m in mutants if m.key not in ACCEPTED]
    running: list[tuple[int, int, Mutant, float, float]] = []
    queue = list(mutants)
    while queue or running:
        while queue and len(running) < max(1, jobs):
            m = queue.pop(0)
            budget = timeout + 3 * sum(plan.cost.get(t.cell_id, 1.0) for t in plan.affected_tests(m.cell_id))
            pid, fd = _fork(plan, ns, m)
            running.append((pid, fd, m, time.monotonic() + budget, time.perf_counter()))
        ready, _, _ = select.select([r[1] for r in running], [], [], 0.5)
        now = time.monotonic()
        for item in list(running):
            pid, fd, m, deadline, t0 = item
            if fd in ready or now > deadline:
                running.remove(item)
                res = _collect(pid, fd, deadline)
                results.append(
                    Result(
                        m.key,
                        m.cell_id,
                        res["status"],
                        res.get("killed_by"),
                        res.get("error"),
                        time.perf_counter() - t0,
                        [t.cell_id for t in plan.affected_tests(m.cell_id)],
                    )
                )
                if log and res["status"] == "survived":
                    log(f"  [{assignment}] survived: {m.key}")
    results.sort(key=lambda r: r.key)
    return Report(
        assignment, results, baseline_ok, None if baseline_ok else base.get("error"), time.perf_counter() - t_start
    )


def read_replacements(path: Path) -> dict[str, str]:
    """grade_id -> cell source from a file of ``# %% [grade_id]`` sections (the alternative-solution fixtures)."""
    out: dict[str, str] = {}
    current = None
    for line in Path(path).read_text().split("\n"):
        m = re.match(r"^# %% \[(.+)\]\s*$", line)
        if m:
            current = m.group(1)
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return {k: v.strip("\n") + "\n" for k, v in out.items()}


def check_replacements(assignment: str, replacements: dict[str, str], root: Path = ROOT) -> dict[str, str | None]:
    """Run the notebook with some solution cells replaced; test cell id -> error (None when it passed).

    Every test cell runs (hidden tests included), whatever happened before, like the grader does."""
    _prepare_worker(assignment, root)
    plan = Plan(assignment, root)
    unknown = set(replacements) - {c.cell_id for c in plan.cells if c.kind == "solution"}
    if unknown:
        raise KeyError(f"{assignment}: no solution cells with the ids {sorted(unknown)}")
    ns: dict = {"__name__": "__main__"}
    results: dict[str, str | None] = {}
    for cell in plan.cells:
        if cell.kind == "test":
            results[cell.cell_id] = _exec(cell, cell.source, ns)
        elif cell.cell_id in plan.needed:
            error = _exec(cell, replacements.get(cell.cell_id, cell.source), ns)
            if error:
                results[cell.cell_id] = error
    return results


def _prepare_worker(assignment: str, root: Path) -> None:
    """Quiet plots, scratch records and checkpoints, one thread, the notebook's folder as cwd."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["COURSE_RECORD_DIR"] = tempfile.mkdtemp(prefix="mutation-records-")
    import torch

    torch.set_num_threads(1)
    import course_utils.checkpoints as checkpoints

    scratch = Path(tempfile.mkdtemp(prefix="mutation-checkpoints-"))
    checkpoints.checkpoint_dir = lambda: scratch  # mutants must not fill the course's checkpoint cache
    os.chdir(root / "solutions" / assignment)


def run_in_subprocess(
    assignment: str,
    jobs: int = 1,
    timeout: float = 60.0,
    only: str | None = None,
    verbose: bool = False,
    run_accepted: bool = False,
) -> Report:
    """Run one assignment in a fresh Python (fast/offline mode as set by the caller's environment)."""
    import subprocess

    cmd = [sys.executable, "-m", "tools.mutation", "--worker", assignment, "-j", str(jobs), "--timeout", str(timeout)]
    if only:
        cmd += ["--only", only]
    if run_accepted:
        cmd.append("--run-accepted")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if verbose and proc.stderr:
        sys.stderr.write(proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"mutation worker for {assignment} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(lines[-1])
    return Report(
        data["assignment"],
        [Result(**r) for r in data["results"]],
        data["baseline_ok"],
        data["baseline_error"],
        data["seconds"],
    )


def format_report(reports: list[Report], verbose: bool = False) -> str:
    lines = [
        f"{'assignment':<18}{'mutants':>8}{'killed':>8}{'accepted':>9}{'survived':>9}{'score':>8}{'raw':>8}{'time':>8}"
    ]
    for rep in reports:
        lines.append(
            f"{rep.assignment:<18}{len(rep.results):>8}{rep.killed:>8}{len(rep.accepted):>9}"
            f"{len(rep.unexpected):>9}{rep.score():>8.1%}{rep.score(adjusted=False):>8.1%}"
            f"{rep.seconds:>7.0f}s"
        )
        if not rep.baseline_ok:
            lines.append(f"   the REFERENCE fails its own tests: {rep.baseline_error}")
        for r in rep.accepted:
            if verbose:
                lines.append(f"   accepted  {r.key}\n             ({ACCEPTED[r.key]})")
        for r in rep.unexpected:
            lines.append(f"   SURVIVED  {r.key}   (tests: {', '.join(r.tests) or 'none'})")
        if verbose:
            for r in rep.results:
                if r.status in ("killed", "timeout"):
                    lines.append(f"   {r.status:<9} {r.key}  <- {r.killed_by}: {(r.error or '')[:100]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("assignments", nargs="*", help="A1 ... A6 or full names (default: all)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutants run in parallel per assignment")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant, on top of the tests' cost")
    parser.add_argument("--only", help="run only the mutants whose key contains this text")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every mutant")
    parser.add_argument(
        "--run-accepted",
        action="store_true",
        help="also run the accepted (equivalent) mutants, to check that they still survive",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--replace",
        metavar="FILE",
        help="with one assignment: run its tests with the solution "
        "cells replaced by the # %%%% [grade_id] sections of FILE; print the failing test cells",
    )
    args = parser.parse_args(argv)
    if args.replace:
        (assignment,) = [a for a in ASSIGNMENTS if any(a.startswith(x) for x in args.assignments)]
        results = check_replacements(assignment, read_replacements(Path(args.replace).resolve()))
        print(json.dumps(results))
        return 1 if any(results.values()) else 0
    if args.worker:
        rep = run_assignment(
            args.worker,
            args.jobs,
            args.timeout,
            args.only,
            log=lambda s: print(s, file=sys.stderr, flush=True),
            run_accepted=args.run_accepted,
        )
        print(
            json.dumps(
                {
                    "assignment": rep.assignment,
                    "results": [asdict(r) for r in rep.results],
                    "baseline_ok": rep.baseline_ok,
                    "baseline_error": rep.baseline_error,
                    "seconds": rep.seconds,
                }
            )
        )
        return 0
    wanted = [a for a in ASSIGNMENTS if not args.assignments or any(a.startswith(x) for x in args.assignments)]
    reports = []
    for a in wanted:
        rep = run_in_subprocess(a, args.jobs, args.timeout, args.only, args.verbose, args.run_accepted)
        reports.append(rep)
        print(format_report([rep], args.verbose).split("\n", 1)[1], flush=True)
    print(format_report(reports, args.verbose))
    bad = [r for r in reports if r.unexpected or not r.baseline_ok or (r.score() < TARGET_SCORE and not args.only)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
