"""The house's layering, read from every module's imports (top-level and inside functions):
controls -> model -> app, with data, train, eval and bench beside; only app imports gradio; no
module of the project imports an entry point (``__main__``)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("controls", "model", "data", "app", "train", "eval", "bench")
NOT_FROM = {
    "controls": {"data", "model", "app", "train", "eval", "bench"},
    "model": {"app", "train", "eval", "bench"},
    "data": {"model", "app", "train", "eval", "bench"},
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(NOT_FROM))
def test_lower_layers_import_nothing_from_higher_ones(package):
    bad = [f"{p.relative_to(ROOT)} imports {name}" for p in _modules(package) for name in _imports(p)
           if name.split(".")[0] in NOT_FROM[package]]
    assert not bad, "\n".join(bad)


def test_only_the_app_imports_gradio():
    bad = [str(p.relative_to(ROOT)) for pkg in PACKAGES if pkg != "app" for p in _modules(pkg)
           if any(n.split(".")[0] in ("gradio", "gradio_client") for n in _imports(p))]
    assert not bad, bad


def test_no_module_imports_an_entry_point():
    bad = [f"{p.relative_to(ROOT)} imports {n}" for pkg in PACKAGES for p in _modules(pkg)
           for n in _imports(p) if n.endswith("__main__")]
    assert not bad, "\n".join(bad)
