"""Import direction: the pure core never imports the shell, a driver or the SDK's client."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "collector"

# what each core package may import, beyond the standard library
CORE_ALLOWED = {
    "core/forms": {
        "collector.core.forms",
        "collector.core.pointer",
        "collector.core.telnyx_params",
        "jsonschema",
        "referencing",
        "pydantic",
        "email_validator",
        "telnyx.types",
        "orjson",
    },
    "core/session": {
        "collector.core.session",
        "collector.core.forms",
        "collector.core.pointer",
        "pydantic",
        "orjson",
    },
}
FORBIDDEN_EVERYWHERE_IN_CORE = (
    "starlette",
    "uvicorn",
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "httpx",
    "aiohttp",
    "collector.adapters.store",
    "collector.web.app",
    "collector.workers.engine",
    "collector.runtime",
    "telnyx._client",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_only_what_it_may() -> None:
    """forms/ and session/ import nothing of the shell: no HTTP, no database, no clock."""
    import sys

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
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_EVERYWHERE_IN_CORE):
                    problems.append(f"{path.name}: {name}")
                elif not any(name == a or name.startswith(a + ".") for a in allowed):
                    problems.append(f"{path.name}: {name} (not in the allow-list)")
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
