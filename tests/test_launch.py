"""Static checks of launch/dudes.launch.py (launch_ros is absent here), plus a real load where
launch_ros is importable."""

from __future__ import annotations

import ast
import importlib.util

import pytest

from dudes_ros.ros.params import BY_NAME
from tests.conftest import REPO

LAUNCH = REPO / "launch" / "dudes.launch.py"
RCLPY_BUILTIN_PARAMETERS = {"use_sim_time"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def test_module_level_has_no_side_effects(tree):
    for node in tree.body:
        allowed = (ast.FunctionDef, ast.Import, ast.ImportFrom, ast.Assign)
        is_docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        assert isinstance(node, allowed) or is_docstring, ast.dump(node)[:80]
        if isinstance(node, ast.Assign):
            assert isinstance(node.value, (ast.Dict, ast.Constant)), "only constant tables"
    top_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not top_imports, "launch/launch_ros must be imported inside functions"


def test_it_runs_the_installed_dudes_node_executable(tree):
    (node,) = _calls(tree, "LifecycleNode")
    assert ast.literal_eval(_keyword(node, "package")) == "dudes_ros"
    assert ast.literal_eval(_keyword(node, "executable")) == "dudes_node"
    setup = (REPO / "setup.py").read_text()
    assert '"dudes_node = dudes_ros.ros.node:main"' in setup


def test_every_parameter_it_passes_is_declared(tree):
    passed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "overrides"
                                                for t in node.targets):
            passed |= {ast.literal_eval(k) for k in node.value.keys}
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", "") == "overrides":
            passed.add(ast.literal_eval(node.slice))
    assert {"model", "backend", "cameras", "use_sim_time"} <= passed
    assert passed <= set(BY_NAME) | RCLPY_BUILTIN_PARAMETERS


def test_declared_arguments_cover_the_issue():
    spec = importlib.util.spec_from_file_location("dudes_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # safe: nothing but definitions at module level
    assert {"cameras", "image_topic", "image_topics", "model", "backend", "params_file",
            "namespace", "use_sim_time"} <= set(module.ARGUMENTS)
    assert module._split(" front, left ,") == ["front", "left"]
    assert callable(module.generate_launch_description)


def test_launch_description_builds_where_launch_ros_exists():
    pytest.importorskip("launch_ros")
    spec = importlib.util.spec_from_file_location("dudes_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert {"cameras", "model", "backend", "params_file"} <= names
