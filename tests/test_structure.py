"""The package's shape: no import cycle anywhere in ``tll_core`` (function-level imports included), the
engine never imports streamlit, and one function (``tll_core.images.open_image``) opens every image."""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tll_core"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every tll_core module ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_tll_core_has_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "tll_core.backbones.base" in graph and graph["tll_core.backbones.registry"]  # the walk sees imports
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_tll_core_never_imports_streamlit() -> None:
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "streamlit" for n in names), path


def test_every_page_starts_by_entering_through_app_py() -> None:
    """A file in ``pages/`` may be run directly by Streamlit (its automatic multipage app: a deep link on a fresh
    server, AppTest's ``switch_page``); its first statement, ``enter()``, then runs app.py instead. Shared code
    is the ``studio`` package, never a module in ``pages/`` (it would be listed as a page)."""
    root = PACKAGE.parent
    pages = sorted((root / "pages").glob("*.py"))
    listed = re.findall(r'st\.Page\("pages/([^"]+)"', (root / "app.py").read_text())
    assert pages and sorted(listed) == [p.name for p in pages]  # every page file is listed in app.py, and only those
    assert (root / "studio" / "__init__.py").is_file()
    for path in pages:
        body = ast.parse(path.read_text()).body
        statements = [n for n in body if not isinstance(n, (ast.Import, ast.ImportFrom))][1:]  # after the docstring
        first = statements[0]
        assert isinstance(first, ast.Expr) and ast.unparse(first) == "enter()", f"{path.name}: first statement {ast.unparse(first)}"
        assert f'st.Page("pages/{path.name}"' in (root / "app.py").read_text(), path.name


def _image_opens(path: Path) -> list[str]:
    """Where ``path`` calls Pillow's ``Image.open`` (as ``Image.open``, ``PIL.Image.open`` or an imported
    ``open`` from ``PIL.Image``): ``function:line`` of each."""
    tree = ast.parse(path.read_text())
    imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "PIL.Image"
                for a in n.names if a.name == "open"}
    enclosing = {child: node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for child in ast.walk(node)}  # a nested function's calls: walked later, so the innermost wins
    found = []
    for node in ast.walk(tree):
        f = node.func if isinstance(node, ast.Call) else None
        if ((isinstance(f, ast.Attribute) and f.attr == "open" and ast.unparse(f.value).split(".")[-1] == "Image")
                or (isinstance(f, ast.Name) and f.id in imported)):
            found.append(f"{enclosing.get(node, '<module>')}:{node.lineno}")
    return found


def test_only_open_image_calls_pillows_image_open() -> None:
    """Every image is opened by ``tll_core.images.open_image``, which lets Pillow try only the raster formats
    meant (its EPS plugin would run Ghostscript on a file's content): no other code calls ``Image.open``."""
    root = PACKAGE.parent
    files = [root / "app.py", *(p for d in ("tll_core", "studio", "pages", "bench") for p in (root / d).rglob("*.py"))]
    assert len(files) > 40
    calls = {str(p.relative_to(root)): c for p in files if (c := _image_opens(p))}
    assert list(calls) == ["tll_core/images.py"] and [c.split(":")[0] for c in calls["tll_core/images.py"]] == ["open_image"], calls
    assert _image_opens_in("from PIL import Image\ndef f(p):\n    return Image.open(p)\n") == ["f:3"]
    assert _image_opens_in("import PIL.Image\nPIL.Image.open('x')\n") == ["<module>:2"]
    assert _image_opens_in("from PIL.Image import open as o\no('x')\n") == ["<module>:2"]


def _image_opens_in(source: str) -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.py"
        path.write_text(source)
        return _image_opens(path)


def test_importing_every_module_opens_no_weights_file() -> None:
    """Importing does no work (issue 19): on old main ``tll_core.selection`` chose its default recipe at import,
    hashing two EfficientNet-Lite checkpoints. A fresh interpreter imports every module of tll_core and studio
    under an audit hook that records every weights file opened."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil, sys
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].endswith((".pth", ".pt", ".bin", ".safetensors", ".ckpt")):
        opened.append(args[0])
sys.addaudithook(hook)
import tll_core, studio
names = [m.name for pkg in (tll_core, studio) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    if not name.endswith("__main__"):
        importlib.import_module(name)
print(len(names), opened)
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    count, opened = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) > 30 and opened == "[]", done.stdout[-2000:]


def private_reaches(source: str, *, library_internals: bool = False) -> list[str]:
    """Where code reaches a private name it does not own: ``from m import _name``, or ``x._name`` on anything
    but ``self``/``cls`` (``library_internals``: attributes of torch/timm/open_clip objects are allowed, as in
    ``tll_core/backbones/``, where they belong). ``line: what`` of each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")) and not library_internals):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reaches_another_s_private_names() -> None:
    """Capabilities on the parts (issue 19): no module imports a private name from another or reads an object's
    private attribute; library internals (torch, open_clip) are read only under ``tll_core/backbones/``."""
    root = PACKAGE.parent
    files = [root / "app.py", *(p for d in ("tll_core", "studio", "pages", "bench", "tests") for p in (root / d).rglob("*.py"))]
    found = {str(p.relative_to(root)): hits for p in files
             if (hits := private_reaches(p.read_text(), library_internals="backbones" in p.relative_to(root).parts))}
    assert found == {}
    assert private_reaches("from a import _b\nx._y\nself._z\n") == ["1: import _b", "2: x._y"]
