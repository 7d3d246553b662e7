"""A small mutation tester: does the suite notice when the code is subtly wrong?

Each mutant changes one thing in one module (a comparison, ``and``/``or``, a ``not``, a
condition negated, ``True``/``False``, an integer off by one) and runs the tests that should
catch it against a copy of the working tree. A mutant the tests do not fail on *survived*:
either a missing test, or a change that makes no difference (read the list and decide).

    python scripts/mutation.py reconciler/core/plan.py --tests tests/core tests/apply
    python scripts/mutation.py reconciler/crypto --tests tests/crypto --limit 40
    scripts/mutation.sh            # core, apply and crypto, each with its tests (slow)

Not part of CI: a full run takes many minutes. The score and the survivors are printed, one
survivor per line as ``file:line: original -> mutant``; ``--json FILE`` saves them.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SWAPS = {
    ast.Lt: "<=",
    ast.LtE: "<",
    ast.Gt: ">=",
    ast.GtE: ">",
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.Is: "is not",
    ast.IsNot: "is",
    ast.In: "not in",
    ast.NotIn: "in",
}
NEGATED = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)
TOKENS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


@dataclass(frozen=True)
class Mutant:
    path: str
    line: int
    start: int  # byte offsets into the file
    end: int
    original: str
    replacement: str

    def apply(self, raw: bytes) -> bytes:
        return raw[: self.start] + self.replacement.encode("utf-8") + raw[self.end :]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.original.strip()} -> {self.replacement.strip()}"


def _offsets(text: str) -> list[int]:
    starts, n = [0], 0
    for line in text.splitlines(keepends=True):
        n += len(line.encode("utf-8"))
        starts.append(n)
    return starts


class _Finder(ast.NodeVisitor):
    """Collects mutation sites; skips docstrings, log calls and ``raise`` messages."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.raw = text.encode("utf-8")
        self.lines = _offsets(text)
        self.mutants: list[Mutant] = []

    def _pos(self, lineno: int, col: int) -> int:
        return self.lines[lineno - 1] + col

    def _span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self._pos(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self._pos(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def _add(self, line: int, start: int, end: int, replacement: str) -> None:
        original = self.raw[start:end].decode("utf-8")
        self.mutants.append(Mutant(self.path, line, start, end, original, replacement))

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring
        call = node.value
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "log"
        ):
            return
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        return  # the message of an error is not behaviour these tests pin

    def visit_Compare(self, node: ast.Compare) -> None:
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            _, gap_start = self._span(left)
            gap_end, _ = self._span(right)
            gap = self.raw[gap_start:gap_end].decode("utf-8")
            token = TOKENS[type(op)]
            at = gap.find(token)
            if at >= 0:
                s = gap_start + len(gap[:at].encode("utf-8"))
                self._add(node.lineno, s, s + len(token), SWAPS[type(op)])
            left = right
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        word, other = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for a, b in zip(node.values, node.values[1:], strict=False):
            _, gs = self._span(a)
            ge, _ = self._span(b)
            gap = self.raw[gs:ge].decode("utf-8")
            at = gap.find(word)
            if at >= 0:
                s = gs + len(gap[:at].encode("utf-8"))
                self._add(node.lineno, s, s + len(word), other)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            s, _ = self._span(node)
            o, _ = self._span(node.operand)
            self._add(node.lineno, s, o, "")
        self.generic_visit(node)

    def _negate(self, test: ast.expr) -> None:
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in NEGATED:
            return  # the same mutant as swapping its operator
        s, e = self._span(test)
        text = self.raw[s:e].decode("utf-8")
        self._add(test.lineno, s, e, f"not ({text})")

    def visit_If(self, node: ast.If) -> None:
        self._negate(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._negate(node.test)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        s, e = self._span(node)
        if node.value is True or node.value is False:
            self._add(node.lineno, s, e, str(not node.value))
        elif type(node.value) is int:
            self._add(node.lineno, s, e, str(node.value + 1))


def mutants_of(path: Path) -> list[Mutant]:
    text = path.read_text(encoding="utf-8")
    finder = _Finder(str(path.relative_to(ROOT)), text)
    finder.visit(ast.parse(text))
    return finder.mutants


def python_files(targets: list[str]) -> Iterator[Path]:
    for t in targets:
        p = (ROOT / t).resolve()
        yield from sorted(p.rglob("*.py")) if p.is_dir() else [p]


def copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked and new files, not ignored ones); outside a
    git checkout, every file but caches."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    if listed.returncode != 0:
        skip = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".*_cache")
        shutil.copytree(ROOT, dest, symlinks=True, ignore=skip, dirs_exist_ok=True)
        return
    files = listed.stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        src = ROOT / f.decode()
        if src.is_file() or src.is_symlink():
            target = dest / f.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target, follow_symlinks=False)


def run_tests(tree: Path, tests: list[str], timeout: float) -> str:
    """``killed`` (a test failed), ``survived`` or ``timeout`` (counted as killed)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        r = subprocess.run(cmd, cwd=tree, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if r.returncode == 0 else "killed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("targets", nargs="+", help="modules or packages to mutate")
    ap.add_argument("--tests", nargs="+", required=True, help="pytest arguments that should kill")
    ap.add_argument("--limit", type=int, default=0, help="at most N mutants (a random sample)")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument(
        "--survivors-of",
        type=Path,
        default=None,
        help="only the mutants that survived in this earlier --json (e.g. with more tests)",
    )
    args = ap.parse_args(argv)

    mutants = [m for f in python_files(args.targets) for m in mutants_of(f)]
    if args.survivors_of:
        earlier = json.loads(args.survivors_of.read_text())["results"]
        keep = {
            (r["path"], r["start"], r["replacement"]) for r in earlier if r["verdict"] == "survived"
        }
        mutants = [m for m in mutants if (m.path, m.start, m.replacement) in keep]
    if args.limit and len(mutants) > args.limit:
        mutants = sorted(random.Random(args.seed).sample(mutants, args.limit), key=str)
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        started = time.monotonic()
        if run_tests(tree, args.tests, timeout=600) != "survived":
            print("the tests fail without any mutant: fix them first", file=sys.stderr)
            return 2
        baseline = time.monotonic() - started
        print(f"{len(mutants)} mutant(s); the tests take {baseline:.1f} s", flush=True)
        results: list[tuple[Mutant, str]] = []
        for i, m in enumerate(mutants, 1):
            target = tree / m.path
            original = target.read_bytes()
            target.write_bytes(m.apply(original))
            try:
                verdict = run_tests(tree, args.tests, timeout=max(60.0, baseline * 5))
            finally:
                target.write_bytes(original)
            results.append((m, verdict))
            print(f"[{i}/{len(mutants)}] {verdict:8} {m}", flush=True)
    survivors = [m for m, v in results if v == "survived"]
    killed = len(results) - len(survivors)
    score = 100.0 * killed / len(results) if results else 100.0
    print(f"\nmutation score: {killed}/{len(results)} killed ({score:.1f}%)")
    for m in survivors:
        print(f"  survived: {m}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "score": score,
                    "killed": killed,
                    "total": len(results),
                    "results": [{**asdict(m), "verdict": v} for m, v in results],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
