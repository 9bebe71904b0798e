"""Layers only point down: ``meetup_protocol`` at the bottom; the control plane, the relay and the SDK
beside each other on top of it, none importing another's internals (read from the source with ``ast``,
so a lazy import inside a function counts too)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OURS = {"meetup_protocol", "functions", "edge_relay", "client_sdk", "local_stack", "infra", "tests", "bench"}
#: What each package may import of ours (besides itself).
ALLOWED = {
    "meetup_protocol": set(),
    "functions": {"meetup_protocol"},
    "edge_relay": {"meetup_protocol"},
    "client_sdk": {"meetup_protocol"},
    # The infrastructure deploys the control plane: it reads its tables and routes to declare them.
    "infra": {"meetup_protocol", "functions"},
}
#: The development-only commands of the ``meet`` CLI run the local stack (a checkout's, not an SDK
#: install's: they say so when it is missing), which runs the API and the relays.
EXCEPTIONS = {("client_sdk/cli/demo.py", "local_stack"), ("client_sdk/cli/local.py", "local_stack")}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


def package_graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for package in ALLOWED:
        for path in sorted((REPO / package).rglob("*.py")):
            for imported in imports_of(path) - {package}:
                graph[package][imported].add(str(path.relative_to(REPO)))
    return graph


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = [
        f"{file} imports {imported}"
        for package, edges in package_graph().items()
        for imported, files in edges.items()
        for file in sorted(files)
        if imported not in ALLOWED[package] and (file, imported) not in EXCEPTIONS
    ]
    assert not wrong, "\n".join(wrong)


def test_the_relay_and_the_sdk_share_only_the_protocol() -> None:
    graph = package_graph()
    assert set(graph["edge_relay"]) == {"meetup_protocol"}
    assert set(graph["client_sdk"]) - {"local_stack"} == {"meetup_protocol"}
    assert "functions" not in graph["edge_relay"] and "functions" not in graph["client_sdk"]


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from functions.core import config\n    import edge_relay.main\n")
    assert imports_of(module) == {"functions", "edge_relay"}
