"""Property-based run of schemathesis against the API's own OpenAPI schema, over real HTTP.

Every operation gets generated requests, valid and invalid, with a real user's token, plus schemathesis'
stateful phase (create, then use what was created). Every check runs: no 5xx, only documented status
codes, answers shaped as the schema says, invalid input refused, valid input accepted (but for the
statuses ``schemathesis.toml`` explains). The seed is fixed so CI is repeatable; run the same command
with another ``--seed`` (or none) to explore further. Bounded so CI stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]


def test_api_honours_its_schema(stack, tmp_path: Path) -> None:
    api = Api(stack.api_url)
    user = api.new_user("Fuzzer")
    api.close()
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "run",
        f"{stack.api_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {user.access_token}",
        "--checks",
        "all",
        "--max-examples",
        os.environ.get("MEETUP_FUZZ_EXAMPLES", "25"),
        "--seed",
        os.environ.get("MEETUP_FUZZ_SEED", "1"),
        "--no-color",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    assert "passed" in summary and "failure" not in summary.split("SUMMARY")[-1].lower(), summary
