"""Security hygiene, checked on the source (AST, not text search, so comments and docstrings
do not count): checkpoints load with ``torch.load(weights_only=True)`` only; nothing unpickles,
evaluates or executes data from files, parameters or messages; the launch file has no side
effects at import."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "dudes_ros"
LAUNCH = REPO / "launch" / "dudes.launch.py"
SOURCES = sorted(PACKAGE.rglob("*.py")) + [LAUNCH]
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal",
                     "shelve", "joblib"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}


def _trees():
    for path in SOURCES:
        yield path.relative_to(REPO), ast.parse(path.read_text(), str(path))


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ""."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _calls(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_sources_were_found():
    assert len(SOURCES) > 30 and LAUNCH.is_file()


def test_torch_load_only_with_weights_only_true():
    found, bad = 0, []
    for path, tree in _trees():
        for call in _calls(tree):
            if _dotted(call.func) == "torch.load":
                found += 1
                flag = _keyword(call, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    bad.append(f"{path}:{call.lineno}")
    assert found >= 1, "no torch.load call found: the scan is broken"
    assert bad == [], f"torch.load without weights_only=True at {bad}"


def test_no_unpickling_modules():
    bad = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            bad += [f"{path}:{node.lineno} imports {n}" for n in names
                    if n in FORBIDDEN_MODULES]
    assert bad == []


def test_no_eval_exec_or_dynamic_code():
    bad = []
    for path, tree in _trees():
        for call in _calls(tree):
            name = _dotted(call.func)
            if name in FORBIDDEN_CALLS or name in ("builtins.eval", "builtins.exec"):
                bad.append(f"{path}:{call.lineno} calls {name}")
    assert bad == []


def test_no_unsafe_loaders_or_shells():
    """yaml only through safe loaders; numpy never with allow_pickle=True; no shell=True,
    os.system or os.popen; no pandas pickle reader or TorchScript loading."""
    bad = []
    for path, tree in _trees():
        for call in _calls(tree):
            name = _dotted(call.func)
            if name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load"):
                loader = _dotted(_keyword(call, "Loader") or ast.Constant(None))
                if not loader.endswith(("SafeLoader", "CSafeLoader")):
                    bad.append(f"{path}:{call.lineno} {name} without a safe Loader")
            allow = _keyword(call, "allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is
                                          False):
                bad.append(f"{path}:{call.lineno} {name}(allow_pickle=...)")
            shell = _keyword(call, "shell")
            if shell is not None and not (isinstance(shell, ast.Constant) and not shell.value):
                bad.append(f"{path}:{call.lineno} {name}(shell=...)")
            if name in ("os.system", "os.popen", "pandas.read_pickle", "pd.read_pickle",
                        "torch.jit.load"):
                bad.append(f"{path}:{call.lineno} {name}")
    assert bad == []


def test_dynamic_imports_take_no_names_from_data():
    """``importlib.import_module`` is called only in the CLI (its fixed subcommand table), the
    doctor (a fixed list) and the bag replay (a bag's message type, validated first)."""
    allowed = {"dudes_ros/cli.py", "dudes_ros/commands/doctor.py", "dudes_ros/bag/replay.py"}
    users = {str(path) for path, tree in _trees() for call in _calls(tree)
             if _dotted(call.func) in ("importlib.import_module", "import_module")}
    assert users <= allowed, users - allowed
    from dudes_ros.bag.replay import message_class

    for msgtype in ("os/msg/system", "subprocess/msg/Popen", "../x/msg/Y", "std_msgs/msg/",
                    "builtins/msg/eval", "a/b", "sensor_msgs/srv/Image"):
        with pytest.raises(ImportError):
            message_class(msgtype)
    from sensor_msgs.msg import Image

    assert message_class("sensor_msgs/msg/Image") is Image


def test_launch_file_top_level_is_declarations_only():
    """Only a docstring, imports, literal assignments and function definitions at module
    level: no call runs when the file is loaded."""
    tree = ast.parse(LAUNCH.read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr):
            assert isinstance(node.value, ast.Constant), ast.dump(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            assert not _calls(node), f"call at line {node.lineno}"
        else:
            assert isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)), ast.dump(node)
    top_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top_imports if "launch" in ast.unparse(n)], (
        "launch/launch_ros must be imported inside generate_launch_description")


def test_importing_the_launch_file_has_no_side_effects(tmp_path):
    """Loading it in a fresh interpreter (in an empty working folder) imports no launch
    module, starts no process or thread, and creates no file."""
    code = f"""
import importlib.util, sys, threading, os
spec = importlib.util.spec_from_file_location("dudes_launch", {str(LAUNCH)!r})
module = importlib.util.module_from_spec(spec)
before = set(sys.modules)
spec.loader.exec_module(module)
new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("launch",
             "launch_ros", "rclpy", "torch", "onnxruntime"))
assert new == [], new
assert threading.active_count() == 1, threading.enumerate()
assert callable(module.generate_launch_description)
assert os.listdir(".") == [], os.listdir(".")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_node_parameters_are_not_interpreted_as_code():
    """Parameters reach the node only through typed validators: a value that looks like
    code is refused or stays an inert string."""
    from dudes_ros.ros import params

    problem = params.validate("backend", "__import__('os').system('touch pwned')")
    assert problem and "one of" in problem
    config = params.NodeConfig.from_values({"model": "x; rm -rf /"})
    assert config.model == "x; rm -rf /"
