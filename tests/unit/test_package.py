"""The installed package as a house you can read (issue 10): every module imports on its own, the sides
depend one way, pika and PyMySQL never share a module, one module handles signals, and a command that
cannot import stops the program instead of vanishing from it. Read from the installed package, since
that is what users run."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pmtabounce

ROOT = Path(pmtabounce.__file__).parent
COMMANDS = {"setup", "process", "producer", "worker", "dlq", "status", "demo", "explain", "undo", "guard", "prune",
            "webhooks", "relay"}
LONGEST_FUNCTION = 60  # lines (issue 17): a function longer than this does more than one job


def modules() -> list[str]:
    return ["pmtabounce"] + [m.name for m in pkgutil.walk_packages([str(ROOT)], "pmtabounce.")]


def source(module: str) -> Path:
    parts = module.split(".")[1:]
    package = ROOT.joinpath(*parts)
    return package / "__init__.py" if package.is_dir() else package.with_suffix(".py")


def imports(module: str) -> set[str]:
    """Absolute names of everything `module` imports (relative imports resolved), at any depth in the file."""
    tree = ast.parse(source(module).read_text())
    package = module if source(module).name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p) if node.level else node.module
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def ours_outside(names: set[str], *sides: str) -> set[str]:
    """The names of our package that are in none of `sides` (e.g. "common")."""
    inside = tuple(f"pmtabounce.{side}" for side in sides)
    return {n for n in names if n.startswith("pmtabounce") and not any(n == s or n.startswith(s + ".") for s in inside)}


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    def import_alone(module: str) -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
        return module, done.stderr.strip().splitlines()[-1] if done.returncode else ""

    assert {"pmtabounce.commands.status", "pmtabounce.dlq.command", "pmtabounce.demo.command"} <= set(modules())
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = {module: error for module, error in pool.map(import_alone, modules()) if error}
    assert failures == {}


def test_common_imports_nothing_of_ours_store_only_common_and_the_two_sides_only_common_and_store():
    # The edge (pmtabounce.commands, .dlq, .demo, cli ...) may import all of these: the engine and store.
    allowed = {"common": ("common",), "producer": ("common", "producer"), "store": ("common", "store"),
               "worker": ("common", "store", "worker")}
    for module in modules():
        side = module.split(".")[1] if module.count(".") else ""
        if side in allowed:
            assert ours_outside(imports(module), *allowed[side]) == set(), module


def test_pika_and_pymysql_never_meet_in_one_module():
    both = [m for m in modules() if {"pika", "pymysql"} <= {n.split(".")[0] for n in imports(m)}]
    assert both == []


def test_pymysql_is_imported_only_under_store():
    users = {m for m in modules() if "pymysql" in {n.split(".")[0] for n in imports(m)}}
    assert users and all(m.startswith("pmtabounce.store.") for m in users), users


def test_no_except_names_a_pymysql_class_outside_store():
    """A PyMySQL error is translated once, in store (db.translate): outside it no handler may name one,
    even one reached through a store module."""
    found = []
    for module in modules():
        if module.startswith("pmtabounce.store."):
            continue
        namespace = vars(importlib.import_module(module))
        for node in ast.walk(ast.parse(source(module).read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                for name in _names(node.type):
                    caught = _resolve(name, namespace)
                    if "pymysql" in getattr(caught, "__module__", "") or "pymysql" in name:
                        found.append(f"{module}: except {name}")
    assert found == []


def _names(node: ast.expr) -> list[str]:
    """The dotted names in an except clause's type (one, or a tuple of them)."""
    if isinstance(node, ast.Tuple):
        return [name for item in node.elts for name in _names(item)]
    return [ast.unparse(node)] if isinstance(node, (ast.Name, ast.Attribute)) else []


def _resolve(name: str, namespace: dict):
    value = namespace.get(name.split(".")[0])
    for part in name.split(".")[1:]:
        value = getattr(value, part, None)
    return value


def test_no_function_is_longer_than_the_limit():
    long = []
    for module in modules():
        for node in ast.walk(ast.parse(source(module).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST_FUNCTION:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_only_the_shutdown_module_installs_signal_handlers():
    handlers = set()
    for module in modules():
        for node in ast.walk(ast.parse(source(module).read_text())):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr == "signal" and getattr(func.value, "id", "") == "signal":
                handlers.add(module)
    assert handlers == {"pmtabounce.common.shutdown"}


def test_nothing_imports_the_cli_back():
    assert [m for m in modules() if m != "pmtabounce.__main__" and "pmtabounce.cli" in imports(m)] == []


def test_every_command_is_registered():
    done = subprocess.run([sys.executable, "-m", "pmtabounce", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert COMMANDS <= listed
    from pmtabounce.cli import main  # every command cli.py registers is one this file knows (and checks above)

    assert set(main.every_command()) == COMMANDS


def test_a_command_that_cannot_import_stops_the_program_at_start():
    # None in sys.modules makes `import` of that name raise ImportError, as a broken module would.
    child = ("import sys; sys.modules['pmtabounce.commands.status'] = None; "
             "from pmtabounce.cli import main; main(['--help'])")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "pmtabounce.commands.status" in done.stderr.strip().splitlines()[-1], done.stderr


def test_a_command_imports_its_own_modules_only():
    """`pmtabounce process` (a cron run) does not pay for what other commands import (issue 20): the cli
    imports a command's module when that command is run."""
    child = ("import sys; from pmtabounce.cli import main; main.get_command(None, 'process'); "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('pmtabounce.'))))")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "pmtabounce.commands.process" in loaded
    assert not {"pmtabounce.dlq.command", "pmtabounce.demo.command", "pmtabounce.commands.explain",
                "pmtabounce.commands.status"} & loaded, loaded
