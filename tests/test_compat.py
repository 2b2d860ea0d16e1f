"""The module paths of release 0.1 (before the folders by concern) still import, for one release,
with a warning that names the new path; nothing in the suite uses them.  # relayout: keep old names"""

import ast
import importlib
import sys
import warnings

import pytest

from pai_bench import _compat
from test_layers import ROOT


@pytest.mark.parametrize("old", sorted(_compat.MOVED))
def test_an_old_module_path_is_the_new_module_with_a_warning(old):
    new = importlib.import_module("pai_bench." + _compat.MOVED[old])
    sys.modules.pop("pai_bench." + old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module("pai_bench." + old)
    assert module is new
    assert new.__spec__.name == new.__name__ == "pai_bench." + _compat.MOVED[old]  # unchanged
    assert any(issubclass(w.category, DeprecationWarning) and _compat.MOVED[old] in str(w.message)
               for w in caught), [str(w.message) for w in caught]


def _imported(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_the_product_imports_no_old_path_and_no_test_machinery():
    old = {"pai_bench." + o for o in _compat.MOVED}
    files = sorted((ROOT / "pai_bench").rglob("*.py"))
    assert len(files) > 40
    for path in files:
        named = set(_imported(path))
        assert not named & old, (path, named & old)
        assert not {n.split(".")[0] for n in named} & {"fake_cuda", "opcount"}, path
    assert not (ROOT / "pai_bench" / "fake_cuda.py").exists()


def test_from_old_module_import_a_name():
    sys.modules.pop("pai_bench.results", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pai_bench.results import load_runs
    from pai_bench.analysis.results import load_runs as new
    assert load_runs is new
