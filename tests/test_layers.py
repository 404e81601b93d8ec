"""Import direction, read from the source with ast: the layers, no upward arrow, no cycle.

Every import counts: at the top, under `if TYPE_CHECKING:` (a type names its dependency)
and inside a function. A module's layer is the longest prefix of its name in LAYER_OF;
each layer may import itself and the layers MAY_IMPORT lists for it, all of them earlier
in ORDER (checked too), so an arrow never points up:

* errors: the exception tree, importing nothing of collector.
* core: pure (forms, session, telnyx_params, pointer): no I/O, no clock, no shell.
* base: plain values and helpers every layer may use: records (what the store hands
  out), bounded, logs, metrics, config and the package itself.
* plugins: `collector.sinks` itself, the public plug-in API (the Sink protocol, the
  registry); the sinks (`collector.sinks.<type>`) are adapters of their own.
* ports: `collector.ports`, the protocols the workers are typed against.
* adapters: the SQLite store and Telnyx (verification, parsing, the command client); they
  implement ports and know no worker, no edge and no runtime, nor each other.
* workers: engine, outbox, delivery, timers: core, base and ports only. No adapter (they
  are handed one), not even `collector.sinks` (a worker is given `ports.Sink`s), no
  driver, no HTTP client, no web framework.
* simulator: the fake Telnyx: core and base only; the sandbox is handed a URL callable,
  not the runtime.
* runtime: the composition root; the one module (with the CLI) that names the store.
* web: the HTTP edge. It is given the Runtime (create_app(runtime)) and reaches the
  engine only through it (`runtime.engine.handle`): it imports no worker, so how events
  are applied is not the edge's business and a web change cannot reach into it; no
  store (its rows come as collector.records), no simulator (the sandbox is the
  runtime's), no sink. It parses webhooks with the telephony adapter (the ingress is the
  other half of that adapter's edge).
* cli: the top.

The layer rules look at the module an import names; the cycle test also counts each
package whose `__init__` an import runs, outside the importer's own packages.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "collector"

ORDER = [
    "errors",
    "core",
    "base",
    "plugins",
    "ports",
    "sinks",
    "adapters",
    "store",
    "telephony",
    "workers",
    "simulator",
    "runtime",
    "web",
    "cli",
]
LAYER_OF = {
    "collector": "base",
    "collector.errors": "errors",
    "collector.core": "core",
    "collector.records": "base",
    "collector.bounded": "base",
    "collector.logs": "base",
    "collector.metrics": "base",
    "collector.config": "base",
    "collector.sinks": "plugins",  # the package itself; its submodules are "sinks"
    "collector.ports": "ports",
    "collector.adapters": "adapters",  # the package's docstring
    "collector.adapters.store": "store",
    "collector.adapters.telephony": "telephony",
    "collector.workers": "workers",
    "collector.simulator": "simulator",
    "collector.runtime": "runtime",
    "collector.web": "web",
    "collector.cli": "cli",
}
_BELOW_ADAPTERS = {"errors", "core", "base", "ports"}
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "base": {"errors", "core"},
    "plugins": {"errors", "core", "base"},
    "ports": {"errors", "core", "base", "plugins"},
    "sinks": {"errors", "core", "base", "plugins"},
    "adapters": set(),
    "store": _BELOW_ADAPTERS,
    "telephony": _BELOW_ADAPTERS,
    "workers": _BELOW_ADAPTERS,
    "simulator": {"errors", "core", "base"},
    "runtime": set(ORDER[: ORDER.index("runtime")]),
    "web": {"errors", "core", "base", "ports", "telephony", "runtime"},
    "cli": set(ORDER[: ORDER.index("cli")]),
}

# what each core package may import from outside collector, beyond the standard library
CORE_ALLOWED = {
    "core/forms": {
        "jsonschema",
        "referencing",
        "pydantic",
        "email_validator",
        "telnyx.types",
        "orjson",
    },
    "core/session": {"pydantic", "orjson"},
}
FORBIDDEN_EVERYWHERE_IN_CORE = (
    "starlette",
    "uvicorn",
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "httpx",
    "aiohttp",
    "telnyx._client",
)
# what no worker imports: they are handed the store, the Telnyx client and the sinks
FORBIDDEN_IN_WORKERS = (
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "httpx",
    "aiohttp",
    "starlette",
    "uvicorn",
    "telnyx",
)


# -- the import graph ----------------------------------------------------------------------


def module_names(root: Path, package: str = "collector") -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(path: Path) -> set[str]:
    """The top-level names of what a file imports (relative imports left out)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def named_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that a module's imports name: `from a import b` names
    the module a.b if there is one, else a."""
    found: set[str] = set()
    here = name if _is_package(path) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports, plus the packages whose __init__ they run: those of the
    imported module that are not the importer's own (already running when it runs)."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        own = {name, *_parents(name)}
        targets = named_imports(name, path, modules)
        for target in list(targets):
            targets.update(p for p in _parents(target) if p in modules and p not in own)
        edges[name] = targets
    return edges


def _parents(name: str) -> Iterator[str]:
    parts = name.split(".")
    for n in range(len(parts) - 1, 0, -1):
        yield ".".join(parts[:n])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def layer_of(name: str) -> str:
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYER_OF:
            if prefix == "collector.sinks" and n < len(parts):
                return "sinks"
            return LAYER_OF[prefix]
    raise AssertionError(f"{name}: in no layer")


MODULES = module_names(PACKAGE)


# -- the tests -------------------------------------------------------------------------------


def test_the_layer_table_has_no_upward_arrow() -> None:
    """Each layer may import only layers below it, so the rules themselves allow no cycle."""
    assert set(MAY_IMPORT) == set(ORDER) == set(LAYER_OF.values()) | {"sinks"}
    for layer, allowed in MAY_IMPORT.items():
        upward = {a for a in allowed if ORDER.index(a) >= ORDER.index(layer)}
        assert not upward, (layer, upward)


def test_every_import_follows_the_layers() -> None:
    problems = []
    for name, path in MODULES.items():
        layer = layer_of(name)
        for target in sorted(named_imports(name, path, MODULES)):
            other = layer_of(target)
            if other != layer and other not in MAY_IMPORT[layer]:
                problems.append(f"{name} ({layer}) imports {target} ({other})")
    assert problems == []


def test_only_the_composition_root_and_the_cli_name_the_store() -> None:
    users = {
        name
        for name, path in MODULES.items()
        if not name.startswith("collector.adapters.store")
        and any(
            t.startswith("collector.adapters.store") for t in named_imports(name, path, MODULES)
        )
    }
    assert users <= {"collector.runtime", "collector.cli"}


def test_no_import_cycle() -> None:
    """No two modules import each other, however indirectly, TYPE_CHECKING included."""
    assert cycles(graph(MODULES)) == []


def test_the_cycle_check_sees_type_only_local_and_package_imports(tmp_path: Path) -> None:
    """The graph counts what a plain import scan would miss."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n",
        "b.py": "def f():\n    from pkg.a import x\n",
        "c.py": "from pkg.sub.d import y\n",  # runs pkg/sub/__init__.py too
        "sub/__init__.py": "from pkg import c\n",
        "sub/d.py": "from . import e\n",
        "sub/e.py": "",
    }
    for rel, text in files.items():
        (root / rel).write_text(text, encoding="utf-8")
    modules = module_names(root, "pkg")
    assert cycles(graph(modules)) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub"]]
    assert graph(modules)["pkg.sub.d"] == {"pkg.sub.e"}


def test_core_imports_only_what_it_may() -> None:
    """core/ imports nothing of the shell: no HTTP, no database, no clock."""
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for package, allowed in CORE_ALLOWED.items():
        for path in (PACKAGE / package).rglob("*.py"):
            for name in imports_of(path):
                top = name.split(".")[0]
                if top in stdlib or top == "__future__":
                    if (
                        top in ("time", "sqlite3", "asyncio", "random")
                        and package == "core/session"
                    ):
                        problems.append(f"{path.name}: {name} (the core reads no clock)")
                    continue
                if top == "collector":
                    continue  # test_every_import_follows_the_layers
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_EVERYWHERE_IN_CORE):
                    problems.append(f"{path.name}: {name}")
                elif not any(name == a or name.startswith(a + ".") for a in allowed):
                    problems.append(f"{path.name}: {name} (not in the allow-list)")
    assert problems == []


def test_workers_import_no_driver_and_no_client() -> None:
    """The workers are handed the store, the Telnyx client and the sinks (collector.ports)."""
    problems = [
        f"{path.name}: {name}"
        for path in (PACKAGE / "workers").rglob("*.py")
        for name in imports_of(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_WORKERS)
    ]
    assert problems == []


def test_only_the_edge_talks_to_telnyx() -> None:
    """The SDK's client and verifier are used only in telephony/ (and the simulator/tests)."""
    users = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for name in imports_of(path):
            if name == "telnyx" or (
                name.startswith("telnyx.") and not name.startswith("telnyx.types")
            ):
                users.append(rel)
    outside = sorted(
        {
            u
            for u in users
            if not u.startswith(("adapters/telephony/", "simulator/", "core/telnyx_params/"))
        }
    )
    assert outside == []
