"""The source trees a bench measures: the working tree, or a commit exported to a temporary directory.

``--baseline-ref REF`` (bench.latency, bench.cold_start, bench.run_all) exports the commit REF
with ``git archive REF | tar -x`` into a temporary directory (removed at the end; the repository,
its index and its worktrees are left alone) and measures it beside the "ours" tree in the same
rounds. "Ours" is the working tree, or ``--ours-tree DIR`` (any checkout or export), or
``--ours-ref REF`` (a second export): handy to compare two commits, or to run the benches while
the working tree is mid-edit.

Only the gateway under test comes from a tree: its ``shared/`` (the ``aigw`` package, first on
PYTHONPATH so that it wins over the venv's editable install of the working tree) and its
``functions/`` and ``template.yaml``. The harness (bench/, tests/fakes, tests/support) is always
the working tree's, so both sides meet the same upstream, client and Runtime API.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Tree:
    """One gateway source tree (a directory laid out like the repository)."""

    root: Path
    label: str  # "ours", "ours@abc1234", "base@abc1234"
    sha: str | None = None  # the commit it was exported from (None: working tree or --ours-tree)
    ref: str | None = None  # as given on the command line

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    @property
    def chat_app(self) -> Path:
        return self.root / "functions" / "chat_completions" / "app.py"

    @property
    def template(self) -> Path:
        return self.root / "template.yaml"

    @property
    def is_working_tree(self) -> bool:
        return self.root.resolve() == REPO

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "root": str(self.root), "ref": self.ref, "sha": self.sha}
        if self.is_working_tree:
            out["head"], out["dirty"] = _head_state()
        return out


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _head_state() -> tuple[str | None, bool | None]:
    try:
        head = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", "shared", "functions",
                          "template.yaml"))
        return head, dirty
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return None, None


def resolve(ref: str) -> tuple[str, str]:
    """(full sha, short sha) of a commit-ish."""
    sha = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return sha, _git("rev-parse", "--short", sha)


@contextlib.contextmanager
def export_ref(ref: str, prefix: str = "base") -> Iterator[Tree]:
    """``git archive <sha> | tar -x`` into a temporary directory; yields it as a Tree; removes it."""
    sha, short = resolve(ref)
    tmp = Path(tempfile.mkdtemp(prefix=f"aigw-{prefix}-{short}-"))
    try:
        archive = subprocess.Popen(["git", "archive", "--format=tar", sha], cwd=REPO, stdout=subprocess.PIPE)
        untar = subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, capture_output=True)
        assert archive.stdout is not None
        archive.stdout.close()
        if archive.wait() != 0 or untar.returncode != 0:
            raise RuntimeError(f"exporting {ref} ({sha}) failed: {untar.stderr.decode(errors='replace')}")
        if not (tmp / "shared" / "aigw").is_dir():
            raise RuntimeError(f"{ref} ({short}) has no shared/aigw: not a commit of this gateway")
        yield Tree(tmp, f"{prefix}@{short}", sha, ref)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--baseline-ref", metavar="REF",
                    help="also measure the commit REF (exported to a temporary directory) as 'base', "
                         "interleaved with ours in the same rounds; prints ours/base ratios")
    ours = ap.add_mutually_exclusive_group()
    ours.add_argument("--ours-tree", metavar="DIR", type=Path,
                      help="measure DIR (laid out like the repo) as 'ours' instead of the working tree")
    ours.add_argument("--ours-ref", metavar="REF",
                      help="measure the commit REF (exported) as 'ours' instead of the working tree")


@contextlib.contextmanager
def open_trees(args: argparse.Namespace) -> Iterator[tuple[Tree, Tree | None]]:
    """(ours, base or None) from --ours-tree/--ours-ref/--baseline-ref; exports are removed on exit."""
    with contextlib.ExitStack() as stack:
        if getattr(args, "ours_ref", None):
            ours = stack.enter_context(export_ref(args.ours_ref, "ours"))
        elif getattr(args, "ours_tree", None):
            root = Path(args.ours_tree).resolve()
            if not (root / "shared" / "aigw").is_dir():
                raise SystemExit(f"--ours-tree {root}: no shared/aigw there")
            ours = Tree(root, "ours" if root == REPO else f"ours={root}")
        else:
            ours = Tree(REPO, "ours")
        base = stack.enter_context(export_ref(args.baseline_ref, "base")) if getattr(args, "baseline_ref", None) else None
        yield ours, base


def pythonpath(tree: Tree, *extra: Path, inherited: str | None = None) -> str:
    """PYTHONPATH with ``tree/shared`` first (it must win over the venv's editable install of the
    working tree), then ``extra``, then the ``inherited`` entries (default: this process's
    PYTHONPATH) other than the working tree's shared/."""
    if inherited is None:
        inherited = os.environ.get("PYTHONPATH", "")
    kept = [p for p in inherited.split(os.pathsep) if p and Path(p).resolve() != REPO / "shared"]
    parts = [str(tree.shared), *(str(p) for p in extra), *kept]
    return os.pathsep.join(dict.fromkeys(parts))


def check_aigw_file(tree: Tree, aigw_file: str) -> None:
    if not Path(aigw_file).resolve().is_relative_to(tree.shared.resolve()):
        raise RuntimeError(f"{tree.label}: imported aigw from {aigw_file}, not from {tree.shared}")


def verify_import(tree: Tree, env: dict[str, str], cwd: Path) -> str:
    """Import aigw in a subprocess with ``env`` from ``cwd``; fail unless it comes from ``tree``."""
    proc = subprocess.run([sys.executable, "-c", "import aigw; print(aigw.__file__)"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{tree.label}: `import aigw` failed:\n{proc.stderr[-2000:]}")
    aigw_file = proc.stdout.strip().splitlines()[-1]
    check_aigw_file(tree, aigw_file)
    return aigw_file
