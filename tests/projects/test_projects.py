"""The four projects that ship (meetup_protocol/, functions/, edge_relay/, client_sdk/, each with its own
pyproject.toml) and the development workspace at the root: each project declares every distribution its
code imports, lists exactly the packages its folder holds, and shares version bounds with the others."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bench.install_sizes import PROJECTS, REPO, canonical, project

#: Imports of the development checkout that the SDK makes only inside `meet demo` / `meet local up`,
#: after require_checkout() said clearly what is missing (tests/projects/test_isolation.py runs them).
CHECKOUT_ONLY = {("client_sdk", "local_stack")}


def _sources(folder: str) -> list[Path]:
    return [p for p in (REPO / folder).rglob("*.py") if not {"__pycache__", "build"} & set(p.parts)]


def _imports(folder: str) -> dict[str, list[tuple[Path, bool]]]:
    """Top-level module -> [(file, imported at module level)] for every absolute import in ``folder``."""
    found: dict[str, list[tuple[Path, bool]]] = {}
    for source in _sources(folder):
        tree = ast.parse(source.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.partition(".")[0], []).append((source, id(node) in top))
    return found


def _declared(folder: str) -> dict[str, str]:
    """Canonical distribution name -> requirement string, dependencies and every extra's."""
    data = project(folder)
    texts = list(data.get("dependencies", []))  # type: ignore[call-overload]
    for extra in data.get("optional-dependencies", {}).values():  # type: ignore[attr-defined]
        texts += extra
    return {canonical(Requirement(t).name): t for t in texts}


@pytest.mark.parametrize("folder", PROJECTS)
def test_every_imported_distribution_is_declared(folder: str) -> None:
    declared = _declared(folder)
    own = {folder} | {f for f, name in PROJECTS.items() if name in declared}
    first_party = {*PROJECTS, "local_stack", "infra", "bench", "tests"}
    distributions = importlib.metadata.packages_distributions()
    undeclared, foreign = {}, {}
    for module, where in _imports(folder).items():
        if module in own or module in sys.stdlib_module_names or module == "__future__":
            continue
        if module in first_party:
            if (folder, module) not in CHECKOUT_ONLY or any(top for _, top in where):
                foreign[module] = sorted(str(path.relative_to(REPO)) for path, _ in where)
            continue
        if not {canonical(d) for d in distributions.get(module, [])} & set(declared):
            undeclared[module] = distributions.get(module)
    assert not foreign, f"{folder} imports another project it does not depend on: {foreign}"
    assert not undeclared, f"{folder}/pyproject.toml does not declare what these come from: {undeclared}"


@pytest.mark.parametrize("folder", PROJECTS)
def test_the_package_list_is_the_folder(folder: str) -> None:
    """setuptools gets an explicit package list (the folder is mapped onto the import name): a new
    subpackage must be added there, or its wheel would lack it."""
    listed = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    tree = {
        ".".join((folder, *p.parent.relative_to(REPO / folder).parts))
        for p in _sources(folder)
        if p.name == "__init__.py"
    }
    assert sorted(listed) == sorted(tree)


def test_shared_dependencies_have_the_same_bounds_everywhere() -> None:
    """A distribution two projects need (aiortc for the SDK and the relay, pydantic ...) is required
    with the same bounds in each, so that one environment (the development .venv) satisfies all."""
    seen: dict[str, dict[str, str]] = {}
    for folder in PROJECTS:
        for name, text in _declared(folder).items():
            seen.setdefault(name, {})[folder] = str(Requirement(text))
    differing = {name: by for name, by in seen.items() if len(set(by.values())) > 1}
    assert not differing
    assert {f for f, t in seen["aiortc"].items() if t == "aiortc==1.16.0"} == {"client_sdk", "edge_relay"}


def test_the_workspace_lists_the_projects_not_their_dependencies() -> None:
    """The root pyproject.toml is the development workspace: the four projects (one version, pinned
    exactly), the local stack's moto server, the dev and cdk extras; nothing a project already lists."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    versions = {project(folder)["version"] for folder in PROJECTS} | {root["version"]}
    assert len(versions) == 1
    (version,) = versions
    requirements = [Requirement(text) for text in root["dependencies"]]
    members = {canonical(r.name): r for r in requirements if canonical(r.name) in PROJECTS.values()}
    assert set(members) == set(PROJECTS.values())
    assert {str(r.specifier) for r in members.values()} == {f"=={version}"}
    assert members["meetup-edge-sdk"].extras == {"effects"}
    in_projects = {name for folder in PROJECTS for name in _declared(folder)}
    own = {canonical(r.name) for r in requirements} - set(PROJECTS.values())
    assert own == {"moto"} and not own & in_projects
    for folder in PROJECTS:
        for text in project(folder).get("dependencies", []):  # type: ignore[attr-defined]
            requirement = Requirement(text)
            if canonical(requirement.name) in PROJECTS.values():
                assert str(requirement.specifier) == f"=={version}", (folder, text)
    assert "scripts" not in root  # `meet` is the SDK's
