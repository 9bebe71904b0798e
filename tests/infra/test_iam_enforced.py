"""IAM enforced locally: each Lambda concern's app and a relay run against moto with credentials that carry
exactly the DynamoDB and S3 statements the synthesised templates grant their roles, so a permission
missing from infra/ fails here, without AWS.

How: one moto server (local_stack/moto_iam.py: moto_serial plus per-table DynamoDB authorisation) with
its IAM access control switched on (``POST /moto-api/reset-auth`` with 0, i.e.
``INITIAL_NO_AUTH_ACTION_COUNT=0`` from then on) once an admin user exists; one IAM user per concern
and one for the relay task role, each with its role's statements (tests/infra/iam.py) as an inline
policy; each concern's FastAPI app (only its router, as in its Lambda) under uvicorn in its own process
with its user's keys; the flow driven over HTTP, each path to the concern API Gateway sends it to.

What moto's IAM checking does NOT check (moto's docs call it basic), so this test cannot either:
* Condition blocks: moto evaluates only ``StringEquals`` against request values it does not collect for
  identity policies, so in effect every condition is ignored (the relay's ``dynamodb:LeadingKeys``
  region restriction, settings' ``s3:prefix`` on ListBucket are unchecked);
* resource-based policies (bucket policies, table resource policies), KMS key policies and grants, SCPs,
  permission boundaries, session policies, and any cross-account rules;
* NotAction / NotResource are not evaluated exactly like AWS (iam.py refuses them outright);
* services the local stack does not emulate: Secrets Manager, CloudWatch Logs, X-Ray, ECR (dropped by
  name in iam.NOT_EMULATED), and presigned URLs used by clients (not exercised here);
* presigned uploads and downloads by clients, and the relay's other regions.

moto checks DynamoDB against ``*`` and S3 operations by their API name; local_stack/moto_iam.py maps both
to the actions and ARNs AWS documents (tables and indexes, transactions per item, CreateMultipartUpload
by s3:PutObject ...). This test found chat's missing grant on the throttles table (its post rate limit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.infra.synth import NEEDS_CDK, REPO, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)
boto3 = pytest.importorskip("boto3")
httpx = pytest.importorskip("httpx")

from tests.infra import iam  # noqa: E402

ACCOUNT = "123456789012"  # moto's default account, and TEST_ACCOUNT's
REGION = "us-east-1"
CONCERNS = ("auth", "settings", "meetings", "chat", "recordings")


def test_resolution_fails_loudly_on_what_it_cannot_resolve() -> None:
    pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
    joined = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::b/x/*"]]}
    assert iam.resolve(joined, pseudo) == "arn:aws:s3:::b/x/*"
    assert iam.resolve({"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:t"}, pseudo) == (
        "arn:aws:dynamodb:us-east-1:t"
    )
    for value in ({"Fn::GetAtt": ["Table", "Arn"]}, {"Ref": "Bucket"}, {"Fn::ImportValue": "x"}):
        with pytest.raises(iam.Unresolvable):
            iam.resolve(value, pseudo)
    with pytest.raises(iam.Unresolvable):
        iam.local_policy(
            [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["T", "Arn"]}}],
            account=ACCOUNT,
            region=REGION,
        )


def test_dynamodb_operations_map_to_the_actions_aws_checks() -> None:
    from local_stack.moto_iam import dynamodb_authorizations

    arn = "arn:aws:dynamodb:us-east-1:1:table/{}"
    tx = {"TransactItems": [{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}]}
    assert dynamodb_authorizations("TransactWriteItems", tx, arn) == [
        ("PutItem", arn.format("a")),
        ("ConditionCheckItem", arn.format("b")),
    ]
    assert dynamodb_authorizations("Query", {"TableName": "a", "IndexName": "i"}, arn) == [
        ("Query", arn.format("a") + "/index/i")
    ]


# --- the stack --------------------------------------------------------------------------------------


def _policies(synth: Synth) -> dict[str, dict[str, Any]]:
    meetup = synth.meetup
    api = iam.load(synth.outdir, meetup.api.template_file)
    policies = {
        concern: iam.local_policy(
            iam.role_statements(api, meetup.api.get_logical_id(fn.role.node.default_child)),
            account=ACCOUNT,
            region=REGION,
        )
        for concern, fn in meetup.api.functions.items()
    }
    relay_stack = meetup.relays[REGION]
    relays = iam.load(synth.outdir, relay_stack.template_file)
    role = relay_stack.relays.task.task_role.node.default_child
    policies["relay"] = iam.local_policy(
        iam.role_statements(relays, relay_stack.get_logical_id(role)), account=ACCOUNT, region=REGION
    )
    return policies


@dataclass
class IamStack:
    url: str
    policies: dict[str, dict[str, Any]]
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def client(self, service: str, user: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **self.keys[user])

    def add_user(self, name: str, policy: dict[str, Any]) -> None:
        admin = self.client("iam", "admin")
        admin.create_user(UserName=name)
        admin.put_user_policy(UserName=name, PolicyName="granted", PolicyDocument=json.dumps(policy))
        key = admin.create_access_key(UserName=name)["AccessKey"]
        self.keys[name] = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }

    def process_env(self, user: str) -> dict[str, str]:
        key = self.keys[user]
        return {
            **os.environ,
            **self.env,
            "AWS_ACCESS_KEY_ID": key["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": key["aws_secret_access_key"],
            "PYTHONPATH": str(REPO),
        }


@pytest.fixture(scope="module")
def stack(synth: Synth, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamStack]:
    from local_stack.aws import MotoServer
    from meetup_protocol.tokens import generate_join_keypair

    config = synth.meetup.config
    moto = MotoServer(module="local_stack.moto_iam")
    moto.start()
    try:
        stack = IamStack(url=moto.url, policies=_policies(synth))
        # Unauthenticated until reset-auth: the admin user, whose key does the rest.
        admin = boto3.client(
            "iam", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )
        admin.create_user(UserName="admin")
        everything = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        admin.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(everything))
        key = admin.create_access_key(UserName="admin")["AccessKey"]
        stack.keys["admin"] = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        httpx.post(f"{moto.url}/moto-api/reset-auth", content=b"0").raise_for_status()
        with pytest.raises(Exception, match=r"InvalidClientTokenId|UnrecognizedClient|AccessDenied"):
            boto3.client("dynamodb", endpoint_url=moto.url, region_name=REGION, aws_access_key_id="local",
                         aws_secret_access_key="local").list_tables()  # fmt: skip
        private_pem, public_pem = generate_join_keypair()
        stack.env = {
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "MEETUP_TABLE_PREFIX": config.table_prefix,
            "MEETUP_BUCKET": config.bucket_name,
            "MEETUP_JWT_SECRET": "j" * 43,
            "MEETUP_JOIN_PRIVATE_KEY": private_pem,
            "MEETUP_JOIN_PUBLIC_KEY": public_pem,
            "MEETUP_CLUSTER_SECRET": "c" * 43,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "MEETUP_REGISTRATIONS_PER_IP": "1000000",
            "MEETUP_LOGIN_FAILURES_PER_IP": "1000000",
        }
        subprocess.run(
            [sys.executable, "-c", "from functions.models import create_tables; "
             "from functions.storage import ensure_bucket; create_tables(); ensure_bucket()"],
            env=stack.process_env("admin"), check=True, cwd=REPO, timeout=60,
        )  # fmt: skip
        for name, policy in stack.policies.items():
            stack.add_user(name, policy)
        yield stack
    finally:
        moto.stop()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code in (200, 503):
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


_SERVE = (
    "import sys, uvicorn; from functions.app import create_app; "
    "uvicorn.run(create_app([sys.argv[1]]), host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')"
)


def test_each_concern_and_the_relay_work_with_exactly_their_granted_policies(
    stack: IamStack, tmp_path: Path
) -> None:
    from local_stack.aws import free_port
    from local_stack.relays import RelayProcess

    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The relay, with the relay task role's statements: it registers (PutItem) and reads the registry.
        relay = RelayProcess("local", stack.env["MEETUP_JOIN_PUBLIC_KEY"], env=stack.process_env("relay"))
        relay._env["MEETUP_RELAY_REGISTRY"] = relay._env["MEETUP_RELAY_CLUSTER"] = "true"
        relay_log = tmp_path / "relay.log"
        with relay_log.open("wb") as log:
            procs.append(
                subprocess.Popen([sys.executable, "-m", "edge_relay"], env=relay._env, stderr=log, cwd=REPO)
            )
        apis: dict[str, httpx.Client] = {}
        logs: dict[str, Path] = {}
        for concern in CONCERNS:
            port = free_port()
            logs[concern] = tmp_path / f"{concern}.log"
            with logs[concern].open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _SERVE, concern, str(port)],
                        env=stack.process_env(concern), stdout=log, stderr=log, cwd=REPO,
                    )
                )  # fmt: skip
            apis[concern] = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15)
        _wait_http(f"{relay.http_url}/healthz", procs[0])
        for concern, proc in zip(CONCERNS, procs[1:], strict=True):
            _wait_http(f"{str(apis[concern].base_url).rstrip('/')}/healthz", proc)

        admin_ddb = stack.client("dynamodb", "admin")
        table = f"{stack.env['MEETUP_TABLE_PREFIX']}relays"
        deadline = time.monotonic() + 15
        while not admin_ddb.scan(TableName=table)["Items"]:
            assert time.monotonic() < deadline, f"relay never registered:\n{relay_log.read_text()[-3000:]}"
            time.sleep(0.2)

        def call(concern: str, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = apis[concern].request(method, path, headers=headers, **kw)
            assert r.status_code < 300, (
                f"{concern} {method} {path}: {r.status_code} {r.text}\n" + logs[concern].read_text()[-3000:]
            )
            return r.json() if r.content else None

        creds = {"email": "iam@example.com", "password": "correct horse battery", "display_name": "Iam"}
        call("auth", "POST", "/auth/register", json=creds)
        tokens = call("auth", "POST", "/auth/login", json={k: creds[k] for k in ("email", "password")})
        token = tokens["access_token"]
        call("auth", "GET", "/auth/me", token)
        call("auth", "POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        call("settings", "GET", "/settings", token)
        call("settings", "PATCH", "/settings", token, json={"display_name": "Iam 2"})
        call(
            "settings",
            "POST",
            "/settings/images",
            token,
            json={"purpose": "photo", "content_type": "image/png", "size": 100},
        )
        meeting = call("meetings", "POST", "/meetings", token, json={"title": "IAM"})
        mid = meeting["meeting_id"]
        joined = call("meetings", "POST", f"/meetings/{mid}/join", token, json={})
        # The relay came from the registry (a Scan with the meetings concern's key).
        assert [r["url"] for r in joined["relays"]] == [relay.url], joined
        call("meetings", "GET", f"/meetings/{mid}/participants", token)
        call(
            "chat",
            "POST",
            f"/meetings/{mid}/chat",
            token,
            json={"text": "hi", "idempotency_key": "iam-chat-1"},
        )
        call("chat", "GET", f"/meetings/{mid}/chat", token)
        recording = call(
            "recordings", "POST", f"/meetings/{mid}/recordings", token,
            json={"filename": "m.mp4", "content_type": "video/mp4", "size": 11 << 20, "part_size": 5 << 20},
        )  # fmt: skip
        call("recordings", "GET", f"/meetings/{mid}/recordings", token)
        assert recording
        call("meetings", "POST", f"/meetings/{mid}/leave", token)
        call("meetings", "POST", f"/meetings/{mid}/end", token)
        time.sleep(2)  # a few registry heartbeats and reads
        assert procs[0].poll() is None
        text = relay_log.read_text()
        assert "registry read failed" not in text and "AccessDenied" not in text, text[-3000:]
        for concern in CONCERNS:
            assert "AccessDenied" not in logs[concern].read_text(), concern
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_missing_permission_is_refused(stack: IamStack) -> None:
    """The harness bites: the relay's policy less Scan cannot read the registry; the auth policy less
    PutItem cannot write a registration's transaction."""
    from botocore.exceptions import ClientError

    table = f"{stack.env['MEETUP_TABLE_PREFIX']}relays"
    stack.client("dynamodb", "relay").scan(TableName=table)
    stack.add_user("relay-no-scan", iam.without_action(stack.policies["relay"], "dynamodb:Scan"))
    with pytest.raises(ClientError, match="AccessDenied"):
        stack.client("dynamodb", "relay-no-scan").scan(TableName=table)

    emails = f"{stack.env['MEETUP_TABLE_PREFIX']}emails"
    put = {"Put": {"TableName": emails, "Item": {"email": {"S": "tx@example.com"}, "user_id": {"S": "u"}}}}
    stack.add_user("auth-no-put", iam.without_action(stack.policies["auth"], "dynamodb:PutItem"))
    with pytest.raises(ClientError, match="AccessDenied"):
        stack.client("dynamodb", "auth-no-put").transact_write_items(TransactItems=[put])
    stack.client("dynamodb", "auth").transact_write_items(TransactItems=[put])
    # And a table the concern was never granted, with actions it has elsewhere.
    with pytest.raises(ClientError, match="AccessDenied"):
        stack.client("dynamodb", "auth").get_item(
            TableName=f"{stack.env['MEETUP_TABLE_PREFIX']}meetings", Key={"meeting_id": {"S": "m"}}
        )
