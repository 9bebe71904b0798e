"""``python -m local_stack.moto_iam --host H --port P``: moto_serial's server, with DynamoDB requests
authorised per table the way AWS does it.

moto's IAM access control (on once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served, or after
``POST /moto-api/reset-auth``) checks S3 requests against the bucket/object ARN, but DynamoDB requests
against the resource ``*`` and the API operation's own name. So a policy that names tables by ARN (ours
all do) would refuse every DynamoDB call, and a transaction would need ``dynamodb:TransactWriteItems``,
an action IAM does not have. This module makes moto's DynamoDB check what AWS checks
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html):

* single-item operations, Query and Scan: the action on ``table/<TableName>`` (``/index/<IndexName>``
  when the request names an index);
* TransactWriteItems / TransactGetItems: each item's own action (PutItem, UpdateItem, DeleteItem,
  ConditionCheckItem; GetItem) on that item's table;
* BatchGetItem / BatchWriteItem: the batch action on every table named.

S3 requests are checked against the right bucket/object ARN already, but as ``s3:<operation>``, and
several operations are authorised by another action in AWS (CreateMultipartUpload by ``s3:PutObject``,
ListParts by ``s3:ListMultipartUploadParts`` ...): :data:`S3_ACTIONS` maps those.

Everything else is moto's: signature check, identity-policy evaluation of Action/Resource.
"""

from __future__ import annotations

import json
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.s3.responses import S3Response

from local_stack import moto_serial

_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def dynamodb_authorizations(operation: str, body: dict[str, Any], table_arn: str) -> list[tuple[str, str]]:
    """(IAM action without the ``dynamodb:`` prefix, resource ARN) pairs a request needs.
    ``table_arn`` is the ARN of table ``{}`` (a format string)."""
    if operation == "TransactWriteItems":
        return [
            (_TRANSACT[kind], table_arn.format(spec["TableName"]))
            for item in body.get("TransactItems", [])
            for kind, spec in item.items()
        ]
    if operation == "TransactGetItems":
        return [("GetItem", table_arn.format(i["Get"]["TableName"])) for i in body.get("TransactItems", [])]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(operation, table_arn.format(t)) for t in body.get("RequestItems", {})]
    if "TableName" in body:
        arn = table_arn.format(body["TableName"])
        return [(operation, f"{arn}/index/{body['IndexName']}" if body.get("IndexName") else arn)]
    return [(operation, "*")]  # ListTables, DescribeLimits ...: no table


def _authorize_per_table(self: DynamoHandler, resource: str = "*") -> None:
    from moto.iam.access_control import IAMRequest

    operation = self._get_action()
    body = self.body  # moto's DynamoHandler has parsed it already (a str in older versions)
    if not isinstance(body, dict):
        try:
            body = json.loads(body or "{}")
        except ValueError:
            body = {}
    table_arn = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{{}}"
    for action, arn in dynamodb_authorizations(operation, body, table_arn):
        self._get_action = lambda action=action: action  # type: ignore[method-assign]
        try:
            self._authenticate_and_authorize_action(IAMRequest, arn)
        finally:
            del self._get_action


#: S3 operations whose IAM action has another name
#: (https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations.html, each operation's permissions).
S3_ACTIONS = {
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "CopyObject": "PutObject",
    "UploadPartCopy": "PutObject",
    "ListParts": "ListMultipartUploadParts",
    "HeadObject": "GetObject",
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "DeleteObjects": "DeleteObject",
}

_s3_authorize = S3Response._authenticate_and_authorize_s3_action


def _authorize_s3_by_iam_action(self: S3Response, *args: Any, **kwargs: Any) -> None:
    operation = self._get_action()
    self._get_action = lambda: S3_ACTIONS.get(operation, operation)  # type: ignore[method-assign]
    try:
        _s3_authorize(self, *args, **kwargs)
    finally:
        del self._get_action


def install() -> None:
    DynamoHandler._authenticate_and_authorize_normal_action = _authorize_per_table  # type: ignore[method-assign]
    S3Response._authenticate_and_authorize_s3_action = _authorize_s3_by_iam_action  # type: ignore[method-assign]


def main() -> None:
    install()
    moto_serial.main()


if __name__ == "__main__":
    main()
