"""``python -m bench.install_sizes [--json FILE]``: what each install costs on disk, before and after the
split into one project per deployable (issue 14).

Offline and reproducible: nothing is downloaded or installed. For each closure it walks the requirements
through ``importlib.metadata`` in this environment (recursively, markers evaluated for this interpreter,
extras followed), and sums the sizes of the files each distribution's RECORD lists (its code, compiled
bytecode, data, scripts, metadata). This repository's own projects are installed editable here, so their
share is the size of their folders' ``.py`` files (what their wheels hold).

- **before**: the single ``meetup-edge`` distribution's dependencies (``pyproject.toml`` before the split,
  copied below), which everyone installing anything got;
- **after**: the SDK (``client_sdk/pyproject.toml``), the SDK with its ``effects`` extra, the relay (what
  its image installs), the functions (what the Lambda bundle installs; there built for aarch64, so its
  real size differs a little), each with ``meetup-edge-protocol`` in place.

The ratio is each closure against *before*, measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
#: This repository's projects that ship: folder -> its pyproject.toml's name.
PROJECTS = {
    "meetup_protocol": "meetup-edge-protocol",
    "functions": "meetup-edge-api",
    "edge_relay": "meetup-edge-relay",
    "client_sdk": "meetup-edge-sdk",
}
#: ``[project] dependencies`` of the single meetup-edge distribution before the split (commit b97861a);
#: it installed all of these and the six top-level packages below.
BEFORE = [
    "fastapi>=0.115",
    "mangum>=0.19",
    "aws-lambda-powertools[tracer]>=3.0",
    "pynamodb>=6.0",
    "boto3>=1.35",
    "pydantic>=2.7",
    "pydantic-settings>=2.3",
    "pyjwt[crypto]>=2.8",
    "argon2-cffi>=23.1",
    "aiortc==1.16.0",
    "websockets>=13",
    "msgpack>=1.0",
    "mediapipe==0.10.14; python_version < '3.13'",
    "numpy>=1.26",
    "opencv-contrib-python>=4.8",
    "uvicorn>=0.30",
    "moto[server]>=5.0",
    "httpx>=0.27",
    "typer>=0.12",
    "rich>=13",
]
BEFORE_PACKAGES = ("meetup_protocol", "functions", "edge_relay", "client_sdk", "local_stack", "infra")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project(folder: str) -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
    return data


def requirements_of(folder: str, extras: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """``(requirements, own folders)`` of a project with ``extras``: its own projects among the
    requirements replaced by their requirements (recursively) and listed as folders."""
    by_name = {name: folder for folder, name in PROJECTS.items()}
    data = project(folder)
    wanted = list(data.get("dependencies", []))  # type: ignore[call-overload]
    optional: dict[str, list[str]] = data.get("optional-dependencies", {})  # type: ignore[assignment]
    for extra in extras:
        wanted += optional[extra]
    requirements, own = [], [folder]
    for text in wanted:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        if name in by_name:
            more, more_own = requirements_of(by_name[name], tuple(sorted(requirement.extras)))
            requirements += [r for r in more if r not in requirements]
            own += [f for f in more_own if f not in own]
        elif text not in requirements:
            requirements.append(text)
    return requirements, own


@dataclass
class Closure:
    distributions: dict[str, metadata.Distribution] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)  # required here, not installed in this environment


def closure(requirements: list[str]) -> Closure:
    """Every installed distribution ``requirements`` need, recursively, in this environment."""
    installed = {canonical(d.metadata["Name"]): d for d in metadata.distributions()}
    result = Closure()
    seen: set[tuple[str, str]] = set()  # (distribution, extra) already followed
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonical(requirement.name)
        dist = installed.get(name)
        if dist is None:
            result.missing.add(name)
            continue
        result.distributions[name] = dist
        for wanted_extra in ["", *sorted(requirement.extras)]:
            if (name, wanted_extra) in seen:
                continue
            seen.add((name, wanted_extra))
            todo += [(Requirement(r), wanted_extra) for r in dist.requires or []]
    return result


def distribution_files(dist: metadata.Distribution) -> set[Path]:
    files = set()
    for entry in dist.files or []:
        path = Path(str(dist.locate_file(entry))).resolve()
        if path.is_file():
            files.add(path)
    return files


def source_files(folder: str) -> set[Path]:
    return {
        p.resolve()
        for p in (REPO / folder).rglob("*.py")
        if "__pycache__" not in p.parts and "build" not in p.relative_to(REPO).parts
    }


@dataclass
class Size:
    name: str
    distributions: int
    bytes: int
    own_bytes: int
    biggest: list[tuple[str, int]]
    missing: list[str]


def measure(name: str, requirements: list[str], own: list[str] | tuple[str, ...]) -> Size:
    found = closure(requirements)
    per_dist = {n: distribution_files(d) for n, d in found.distributions.items()}
    own_files = set().union(*(source_files(folder) for folder in own))
    files = own_files.union(*per_dist.values())
    sizes = {n: sum(p.stat().st_size for p in paths) for n, paths in per_dist.items()}
    biggest = sorted(sizes.items(), key=lambda item: -item[1])[:6]
    return Size(
        name,
        distributions=len(found.distributions),
        bytes=sum(p.stat().st_size for p in files),
        own_bytes=sum(p.stat().st_size for p in own_files),
        biggest=biggest,
        missing=sorted(found.missing),
    )


def all_sizes() -> list[Size]:
    sdk, sdk_own = requirements_of("client_sdk")
    effects, effects_own = requirements_of("client_sdk", ("effects",))
    relay, relay_own = requirements_of("edge_relay")
    functions, functions_own = requirements_of("functions")
    return [
        measure("before: meetup-edge (everyone)", BEFORE, BEFORE_PACKAGES),
        measure("after: SDK (meetup-edge-sdk)", sdk, sdk_own),
        measure("after: SDK + effects", effects, effects_own),
        measure("after: relay (image)", relay, relay_own),
        measure("after: functions (Lambda)", functions, functions_own),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = all_sizes()
    before = sizes[0].bytes
    print(f"{'closure':34} {'dists':>5} {'MB':>8} {'x before':>8}  biggest distributions (MB)")
    for size in sizes:
        biggest = ", ".join(f"{n} {b / 1e6:.0f}" for n, b in size.biggest[:4])
        ratio = size.bytes / before
        print(f"{size.name:34} {size.distributions:5d} {size.bytes / 1e6:8.1f} {ratio:8.2f}  {biggest}")
        if size.missing:
            print(f"{'':34} not installed here, not counted: {', '.join(size.missing)}")
    print(f"(Python {sys.version.split()[0]}; the files in each distribution's RECORD, in this venv)")
    if args.json:
        args.json.write_text(json.dumps([size.__dict__ for size in sizes], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
