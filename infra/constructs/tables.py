"""DynamoDB global tables, shaped by the PynamoDB models themselves.

The keys, indexes and TTL attributes are read from ``functions.models`` (the code that uses the tables),
not restated here, so the cloud schema cannot drift from what the functions query. What the models do
not say (replication, recovery, encryption, capacity mode, deletion protection) is decided here, once,
for every table.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct
from pynamodb.attributes import TTLAttribute
from pynamodb.indexes import GlobalSecondaryIndex, Index, LocalSecondaryIndex
from pynamodb.models import Model

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: tuple[str, str]
    sort_key: tuple[str, str] | None
    projection: str = "ALL"  # ALL | KEYS_ONLY (INCLUDE is not used by the models)


@dataclass(frozen=True)
class TableSpec:
    """One table as the functions use it: ``name`` is the part after ``MEETUP_TABLE_PREFIX``."""

    name: str
    partition_key: tuple[str, str]
    sort_key: tuple[str, str] | None = None
    ttl_attribute: str | None = None
    local_indexes: tuple[IndexSpec, ...] = ()
    global_indexes: tuple[IndexSpec, ...] = ()

    @property
    def index_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in (*self.local_indexes, *self.global_indexes))


#: The relay registry (relays heartbeat region, URL and load; TTL drops the dead). Used only while
#: ``functions.models`` has no ``RelayModel`` yet; once it has, the model is the source like any other.
RELAYS_FALLBACK = TableSpec(name="relays", partition_key=("relay_id", "S"), ttl_attribute="expires_at")


def _index_spec(index: Index) -> IndexSpec:
    attrs = index.Meta.attributes.values()
    hash_key = next(a for a in attrs if a.is_hash_key)
    range_key = next((a for a in attrs if a.is_range_key), None)
    return IndexSpec(
        name=index.Meta.index_name,
        partition_key=(hash_key.attr_name, hash_key.attr_type),
        sort_key=(range_key.attr_name, range_key.attr_type) if range_key else None,
        projection=index.Meta.projection.projection_type,
    )


def spec_of(model: type[Model], prefix: str) -> TableSpec:
    """Read a PynamoDB model's table name (without prefix), keys, indexes and TTL attribute."""
    attributes = model.get_attributes().values()
    hash_key = next(a for a in attributes if a.is_hash_key)
    range_key = next((a for a in attributes if a.is_range_key), None)
    ttl = next((a.attr_name for a in attributes if isinstance(a, TTLAttribute)), None)
    indexes = list(model._indexes.values())
    return TableSpec(
        name=model.Meta.table_name.removeprefix(prefix),
        partition_key=(hash_key.attr_name, hash_key.attr_type),
        sort_key=(range_key.attr_name, range_key.attr_type) if range_key else None,
        ttl_attribute=ttl,
        local_indexes=tuple(_index_spec(i) for i in indexes if isinstance(i, LocalSecondaryIndex)),
        global_indexes=tuple(_index_spec(i) for i in indexes if isinstance(i, GlobalSecondaryIndex)),
    )


def table_specs() -> list[TableSpec]:
    """Every table the platform uses, from the models (imported here: they read configuration)."""
    from functions.core.config import get_settings
    from functions.models import ALL_MODELS

    specs = [spec_of(model, get_settings().table_prefix) for model in ALL_MODELS]
    if all(spec.name != RELAYS_FALLBACK.name for spec in specs):
        specs.append(RELAYS_FALLBACK)
    return specs


def _attribute(key: tuple[str, str]) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key[0], type=_TYPES[key[1]])


class GlobalTables(Construct):
    """One TableV2 per spec, replicated to every region: on demand, PITR, KMS encryption, protected.

    Encryption uses the AWS managed key (``aws/dynamodb``): it works in every replica region without
    passing key ARNs between regional stacks, costs nothing, and is auditable in CloudTrail; a customer
    managed key would add per-region keys and cross-region wiring for no gain here.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: list[TableSpec],
        table_prefix: str,
        replica_regions: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.specs = {spec.name: spec for spec in specs}
        self.tables: dict[str, dynamodb.TableV2] = {}
        for spec in specs:
            table = dynamodb.TableV2(
                self,
                "".join(part.title() for part in spec.name.split("-")),
                table_name=f"{table_prefix}{spec.name}",
                partition_key=_attribute(spec.partition_key),
                sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
                billing=dynamodb.Billing.on_demand(),
                encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                time_to_live_attribute=spec.ttl_attribute,
                local_secondary_indexes=[
                    dynamodb.LocalSecondaryIndexProps(
                        index_name=i.name,
                        sort_key=_attribute(i.sort_key),  # type: ignore[arg-type]
                        projection_type=dynamodb.ProjectionType[i.projection],
                    )
                    for i in spec.local_indexes
                ]
                or None,
                global_secondary_indexes=[
                    dynamodb.GlobalSecondaryIndexPropsV2(
                        index_name=i.name,
                        partition_key=_attribute(i.partition_key),
                        sort_key=_attribute(i.sort_key) if i.sort_key else None,
                        projection_type=dynamodb.ProjectionType[i.projection],
                    )
                    for i in spec.global_indexes
                ]
                or None,
                replicas=[dynamodb.ReplicaTableProps(region=r) for r in replica_regions] or None,
                deletion_protection=True,
                removal_policy=RemovalPolicy.RETAIN,
            )
            self.tables[spec.name] = table
