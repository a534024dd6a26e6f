"""Read the SAM template and resolve it against the local stack.

`load_template` parses template.yaml (CloudFormation short-form tags included) and
`Template.resolve` evaluates the intrinsic functions against parameters, conditions, pseudo
parameters and the *local* physical values of resources (table names, queue URLs, key ids,
secret ARNs...). The result is a typed model (`ResolvedTemplate`) of what the local runtime
needs: functions with their merged Globals and environment, HttpApi routes, SQS event sources,
schedules, tables, queues, keys, secrets, event buses, buckets and SES receipt rules. Resources
it accepts but does not emulate (IAM-like policies, permissions) are listed, not refused.

Resolution is lazy where it matters: only the properties the local stack reads are evaluated,
so a construct we do not support raises `TemplateError` (naming it) only if it is actually used.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "AsyncInvokeConfig",
    "Bucket",
    "EventBus",
    "Function",
    "HttpRoute",
    "JwtAuthorizer",
    "Key",
    "LocalContext",
    "Queue",
    "ReceiptAction",
    "ReceiptRule",
    "ResolvedTemplate",
    "Schedule",
    "Secret",
    "SqsEventSource",
    "Table",
    "Template",
    "TemplateError",
    "load_template",
]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
# The Runtime of a function that names none, not even through Globals: the local stack runs it
# on this interpreter. (crmsync's own template names it once, in Globals.)
LOCAL_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
# Resource types the local stack models (everything else is listed in `ignored_resources`).
MODELLED_TYPES = frozenset(
    {
        "AWS::Serverless::Function",
        "AWS::Serverless::LayerVersion",
        "AWS::Serverless::HttpApi",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::SecretsManager::Secret",
        "AWS::Events::EventBus",
        "AWS::S3::Bucket",
        "AWS::SES::ReceiptRuleSet",
        "AWS::SES::ReceiptRule",
    }
)


class TemplateError(Exception):
    """The template uses something the local stack cannot resolve, or is invalid."""


class _NoValue:
    """`AWS::NoValue`: removes the enclosing property or list item."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# ---------------------------------------------------------------------------- YAML loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic tags."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"unsupported YAML node for !{tag_suffix}")
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)

# CloudFormation YAML treats timestamps as strings (e.g. AWSTemplateFormatVersion).
for _first, _resolvers in list(_CfnLoader.yaml_implicit_resolvers.items()):
    _CfnLoader.yaml_implicit_resolvers[_first] = [
        (tag, regexp) for tag, regexp in _resolvers if tag != "tag:yaml.org,2002:timestamp"
    ]


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML (or JSON) file into plain long-form data."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return data


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class LocalContext:
    """Where the template's resources live locally; the source of physical values."""

    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    stack_name: str = "crmsync-local"
    table_prefix: str = ""
    aws_endpoint: str = "http://127.0.0.1:5001"
    api_id: str = "devstack"
    api_url: str = ""
    # Physical ids only known once created (KMS key ids, secret ARNs), by logical id.
    physical_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JwtAuthorizer:
    """An HttpApi JWT authorizer with its configuration resolved."""

    name: str
    issuer: str
    audience: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"


@dataclass(frozen=True)
class HttpRoute:
    """One HttpApi route: `METHOD path` served by a function (payload format 2.0)."""

    api: str
    method: str
    path: str
    function: str
    event: str
    authorizer: JwtAuthorizer | None
    authorization_scopes: tuple[str, ...] = ()
    timeout_ms: int = 30000

    @property
    def route_key(self) -> str:
        """The routeKey API Gateway puts in the event (`$default` for the default route)."""
        if self.path == "$default":
            return "$default"
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class SqsEventSource:
    """An SQS event source mapping."""

    function: str
    event: str
    queue: str
    queue_arn: str
    batch_size: int = 10
    function_response_types: tuple[str, ...] = ()
    enabled: bool = True

    @property
    def report_batch_item_failures(self) -> bool:
        """True when the function reports partial batch failures."""
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class Schedule:
    """A Schedule (EventBridge rule) or ScheduleV2 (EventBridge Scheduler) event."""

    function: str
    event: str
    name: str
    kind: str
    expression: str
    input: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """How Lambda treats the function's asynchronous invocations (SAM `EventInvokeConfig`)."""

    maximum_retry_attempts: int = 2
    #: Logical id of the SQS queue that receives the invocation record once retries are exhausted.
    on_failure_queue: str | None = None


@dataclass(frozen=True)
class Function:
    """An `AWS::Serverless::Function` with Globals applied and properties resolved."""

    logical_id: str
    name: str
    code_uri: Path
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    layers: tuple[Path, ...]
    events: dict[str, dict[str, Any]]
    external_layers: tuple[str, ...] = ()
    event_invoke: AsyncInvokeConfig = field(default_factory=AsyncInvokeConfig)


@dataclass(frozen=True)
class Table:
    """An `AWS::DynamoDB::Table` as CreateTable keyword arguments plus its TTL setting."""

    logical_id: str
    name: str
    definition: dict[str, Any]
    ttl_attribute: str | None = None
    arn: str = ""


@dataclass(frozen=True)
class Queue:
    """An `AWS::SQS::Queue` with the attributes the local stack creates it with."""

    logical_id: str
    name: str
    url: str
    arn: str
    fifo: bool = False
    content_based_deduplication: bool = False
    visibility_timeout: int = 30
    message_retention_period: int | None = None
    delay_seconds: int | None = None
    dead_letter_queue: str | None = None
    max_receive_count: int | None = None


@dataclass(frozen=True)
class Key:
    """An `AWS::KMS::Key` and the aliases that point at it."""

    logical_id: str
    description: str = ""
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    policy: dict[str, Any] | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Secret:
    """An `AWS::SecretsManager::Secret`; `secret_string` is set when the template gives one."""

    logical_id: str
    name: str
    description: str = ""
    secret_string: str | None = None
    generate: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventBus:
    """An `AWS::Events::EventBus`."""

    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class Bucket:
    """An `AWS::S3::Bucket` (created empty; its policies and lifecycle are not emulated)."""

    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class ReceiptAction:
    """One action of an SES receipt rule; the local SES runs the `S3` and `Lambda` kinds."""

    kind: str
    bucket: str = ""
    object_key_prefix: str = ""
    #: Lambda actions: the logical id and ARN of the function, and Event or RequestResponse.
    function: str = ""
    function_arn: str = ""
    invocation_type: str = "Event"


@dataclass(frozen=True)
class ReceiptRule:
    """An `AWS::SES::ReceiptRule`, in the order SES applies its actions."""

    logical_id: str
    name: str
    rule_set: str
    recipients: tuple[str, ...]
    actions: tuple[ReceiptAction, ...]
    enabled: bool = True
    scan_enabled: bool = False
    tls_policy: str = "Optional"

    def matches(self, address: str) -> bool:
        """SES's recipient matching: an address, a domain (not its subdomains), `.domain` (only
        its subdomains); no recipients at all means every address."""
        if not self.recipients:
            return True
        address = address.strip().lower()
        domain = address.rpartition("@")[2]
        for recipient in (r.lower() for r in self.recipients):
            if "@" in recipient:
                if address == recipient:
                    return True
            elif recipient.startswith("."):
                if domain.endswith(recipient):
                    return True
            elif domain == recipient:
                return True
        return False


@dataclass(frozen=True)
class ResolvedTemplate:
    """Everything the local runtime needs, resolved."""

    parameters: dict[str, str]
    conditions: dict[str, bool]
    functions: dict[str, Function]
    routes: tuple[HttpRoute, ...]
    sqs_sources: tuple[SqsEventSource, ...]
    schedules: tuple[Schedule, ...]
    tables: dict[str, Table]
    queues: dict[str, Queue]
    keys: dict[str, Key]
    secrets: dict[str, Secret]
    unsupported_events: tuple[str, ...] = ()
    buses: dict[str, EventBus] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    receipt_rules: tuple[ReceiptRule, ...] = ()
    #: `LogicalId (Type)` of resources accepted but not emulated (policies, permissions...).
    ignored_resources: tuple[str, ...] = ()

    def queue_by_arn(self, arn: str) -> Queue:
        """The queue whose ARN is `arn`."""
        for queue in self.queues.values():
            if queue.arn == arn:
                return queue
        raise TemplateError(f"no queue of this template has the ARN {arn}")


# ---------------------------------------------------------------------------- resolver


_SUB_PATTERN = re.compile(r"\$\{([^}]*)\}")


class _Resolver:
    """Evaluates intrinsic functions for one (template, parameters, context)."""

    def __init__(
        self,
        data: dict[str, Any],
        parameters: dict[str, str],
        context: LocalContext,
    ) -> None:
        self.data = data
        self.resources: dict[str, dict[str, Any]] = data.get("Resources", {})
        self.parameters = parameters
        self.context = context
        self._condition_cache: dict[str, bool] = {}
        self._conditions_in_progress: set[str] = set()

    # -- public helpers

    def resolve(self, value: Any, where: str = "") -> Any:
        """Resolve every intrinsic in `value`; AWS::NoValue removes items."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                    return self._intrinsic(key, arg, where)
            out: dict[str, Any] = {}
            for key, item in value.items():
                resolved = self.resolve(item, f"{where}.{key}" if where else str(key))
                if resolved is not NO_VALUE:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            items = [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        """Evaluate the named condition (cached, cycle-checked)."""
        if name in self._condition_cache:
            return self._condition_cache[name]
        conditions = self.data.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"unknown condition {name!r}")
        if name in self._conditions_in_progress:
            raise TemplateError(f"condition {name!r} refers to itself")
        self._conditions_in_progress.add(name)
        try:
            result = self.resolve(conditions[name], f"Conditions.{name}")
        finally:
            self._conditions_in_progress.discard(name)
        if not isinstance(result, bool):
            raise TemplateError(f"condition {name!r} does not evaluate to a boolean")
        self._condition_cache[name] = result
        return result

    def resource_enabled(self, logical_id: str) -> bool:
        """False when the resource has a Condition that evaluates to false."""
        condition = self.resources[logical_id].get("Condition")
        return True if condition is None else self.condition(condition)

    # -- intrinsics

    def _intrinsic(self, key: str, arg: Any, where: str) -> Any:
        handler = {
            "Ref": self._ref,
            "Condition": lambda a, w: self.condition(self._string(a, "Condition", w)),
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
            "Fn::GetAZs": self._get_azs,
        }.get(key)
        if handler is None:
            raise TemplateError(f"{key} is not supported by the local stack (at {where or '?'})")
        return handler(arg, where)

    def _string(self, value: Any, fn: str, where: str) -> str:
        resolved = self.resolve(value, where)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, (int, float)):
            return str(resolved)
        if not isinstance(resolved, str):
            raise TemplateError(f"{fn} expects a string at {where}, got {resolved!r}")
        return resolved

    def _ref(self, arg: Any, where: str) -> Any:
        name = self._string(arg, "Ref", where)
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.data.get("Parameters", {}):
            if name not in self.parameters:
                raise TemplateError(f"parameter {name} has no Default and no override")
            return self.parameters[name]
        if name in self.resources:
            return self._physical(name, "Ref", where)
        raise TemplateError(f"Ref to unknown name {name!r} at {where}")

    def _pseudo(self, name: str) -> str | None:
        ctx = self.context
        values = {
            "AWS::Region": ctx.region,
            "AWS::AccountId": ctx.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": ctx.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{ctx.region}:{ctx.account_id}:stack/"
                f"{ctx.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
        }
        if name == "AWS::NotificationARNs":
            raise TemplateError("AWS::NotificationARNs is not supported by the local stack")
        return values.get(name)

    def _get_att(self, arg: Any, where: str) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        elif isinstance(arg, list) and len(arg) == 2:
            logical_id = self._string(arg[0], "Fn::GetAtt", where)
            attribute = self._string(arg[1], "Fn::GetAtt", where)
        else:
            raise TemplateError(f"malformed Fn::GetAtt at {where}: {arg!r}")
        if logical_id not in self.resources:
            raise TemplateError(f"Fn::GetAtt to unknown resource {logical_id!r} at {where}")
        return self._physical(logical_id, attribute, where)

    def _physical(self, logical_id: str, attribute: str, where: str) -> str:
        """Local physical values: `attribute` is "Ref" or a GetAtt attribute name."""
        resource = self.resources[logical_id]
        rtype = resource.get("Type", "")
        props = resource.get("Properties") or {}
        ctx = self.context
        region, account = ctx.region, ctx.account_id
        bound = ctx.physical_ids.get(logical_id)
        if rtype == "AWS::DynamoDB::Table":
            name = self.table_name(logical_id)
            arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
            values = {"Ref": name, "Arn": arn, "StreamArn": f"{arn}/stream/1970-01-01T00:00:00.000"}
        elif rtype == "AWS::SQS::Queue":
            name = self.queue_name(logical_id)
            values = {
                "Ref": f"{ctx.aws_endpoint}/{account}/{name}",
                "QueueUrl": f"{ctx.aws_endpoint}/{account}/{name}",
                "Arn": f"arn:aws:sqs:{region}:{account}:{name}",
                "QueueName": name,
            }
        elif rtype == "AWS::KMS::Key":
            key_id = bound or str(uuid.uuid5(uuid.NAMESPACE_URL, f"devstack:{logical_id}"))
            values = {"Ref": key_id, "Arn": f"arn:aws:kms:{region}:{account}:key/{key_id}", "KeyId": key_id}
        elif rtype == "AWS::KMS::Alias":
            values = {"Ref": self._string(props.get("AliasName"), "AliasName", where)}
        elif rtype == "AWS::SecretsManager::Secret":
            name = self.secret_name(logical_id)
            arn = bound or f"arn:aws:secretsmanager:{region}:{account}:secret:{name}"
            values = {"Ref": arn, "Id": arn}
        elif rtype in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api"):
            url = ctx.api_url or f"https://{ctx.api_id}.execute-api.{region}.amazonaws.com"
            values = {"Ref": ctx.api_id, "ApiEndpoint": url, "ApiId": ctx.api_id}
        elif rtype == "AWS::Serverless::Function":
            name = self.function_name(logical_id)
            values = {"Ref": name, "Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}
        elif rtype == "AWS::Serverless::LayerVersion":
            layer_name = self._string(props.get("LayerName", logical_id), "LayerName", where)
            values = {"Ref": f"arn:aws:lambda:{region}:{account}:layer:{layer_name}:1"}
        elif rtype == "AWS::S3::Bucket":
            name = self._string(props.get("BucketName", logical_id.lower()), "BucketName", where)
            values = {
                "Ref": name,
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
            }
        elif rtype == "AWS::Events::EventBus":
            name = self._string(props.get("Name"), "Name", where)
            values = {"Ref": name, "Name": name, "Arn": f"arn:aws:events:{region}:{account}:event-bus/{name}"}
        elif rtype == "AWS::SES::ReceiptRuleSet":
            default = f"{ctx.stack_name}-{logical_id}"
            values = {"Ref": self._string(props.get("RuleSetName", default), "RuleSetName", where)}
        elif rtype == "AWS::SES::ReceiptRule":
            rule = props.get("Rule") or {}
            default = f"{ctx.stack_name}-{logical_id}"
            values = {"Ref": self._string(rule.get("Name", default), "Rule.Name", where)}
        else:
            raise TemplateError(
                f"{'Ref' if attribute == 'Ref' else 'Fn::GetAtt'} to {logical_id} ({rtype}) "
                f"is not supported by the local stack (at {where})"
            )
        if attribute not in values:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not supported by the local stack")
        return values[attribute]

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text = self._string(arg[0], "Fn::Sub", where)
            variables = {k: self.resolve(v, f"{where}.{k}") for k, v in arg[1].items()}
        else:
            raise TemplateError(f"malformed Fn::Sub at {where}: {arg!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self._string(variables[name], "Fn::Sub", where)
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return self._string(self._physical(resource, attribute, where), "Fn::Sub", where)
            return self._string({"Ref": name}, "Fn::Sub", where)

        return _SUB_PATTERN.sub(replace, text)

    def _if(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 3):
            raise TemplateError(f"malformed Fn::If at {where}")
        chosen = arg[1] if self.condition(self._string(arg[0], "Fn::If", where)) else arg[2]
        return self.resolve(chosen, where)

    def _equals(self, arg: Any, where: str) -> bool:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"malformed Fn::Equals at {where}")
        left, right = (self.resolve(item, where) for item in arg)
        return bool(_scalar_text(left) == _scalar_text(right))

    def _bool(self, value: Any, where: str) -> bool:
        resolved = self.resolve(value, where)
        if not isinstance(resolved, bool):
            raise TemplateError(f"expected a condition at {where}, got {resolved!r}")
        return resolved

    def _not(self, arg: Any, where: str) -> bool:
        if not (isinstance(arg, list) and len(arg) == 1):
            raise TemplateError(f"malformed Fn::Not at {where}")
        return not self._bool(arg[0], where)

    def _and(self, arg: Any, where: str) -> bool:
        if not isinstance(arg, list):
            raise TemplateError(f"malformed Fn::And at {where}")
        return all(self._bool(item, where) for item in arg)

    def _or(self, arg: Any, where: str) -> bool:
        if not isinstance(arg, list):
            raise TemplateError(f"malformed Fn::Or at {where}")
        return any(self._bool(item, where) for item in arg)

    def _join(self, arg: Any, where: str) -> str:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"malformed Fn::Join at {where}")
        delimiter = self._string(arg[0], "Fn::Join", where)
        items = self.resolve(arg[1], where)
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Join expects a list at {where}")
        return delimiter.join(self._string(item, "Fn::Join", where) for item in items)

    def _select(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"malformed Fn::Select at {where}")
        index = int(self._string(arg[0], "Fn::Select", where))
        items = self.resolve(arg[1], where)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise TemplateError(f"Fn::Select index {index} out of range at {where}")
        return items[index]

    def _split(self, arg: Any, where: str) -> list[str]:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"malformed Fn::Split at {where}")
        delimiter = self._string(arg[0], "Fn::Split", where)
        return self._string(arg[1], "Fn::Split", where).split(delimiter)

    def _find_in_map(self, arg: Any, where: str) -> Any:
        if not (isinstance(arg, list) and len(arg) in (3, 4)):
            raise TemplateError(f"malformed Fn::FindInMap at {where}")
        map_name, top, second = (self._string(item, "Fn::FindInMap", where) for item in arg[:3])
        try:
            return self.resolve(self.data["Mappings"][map_name][top][second], where)
        except KeyError:
            if len(arg) == 4 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return self.resolve(arg[3]["DefaultValue"], where)
            raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second} not found at {where}") from None

    def _base64(self, arg: Any, where: str) -> str:
        return base64.b64encode(self._string(arg, "Fn::Base64", where).encode()).decode()

    def _get_azs(self, arg: Any, where: str) -> list[str]:
        region = self._string(arg, "Fn::GetAZs", where) or self.context.region
        return [f"{region}{suffix}" for suffix in "abc"]

    # -- local names

    def table_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties") or {}
        base = self._string(props["TableName"], "TableName", logical_id) if "TableName" in props else logical_id
        return f"{self.context.table_prefix}{base}"

    def queue_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties") or {}
        if "QueueName" in props:
            return self._string(props["QueueName"], "QueueName", logical_id)
        fifo = _truthy(self.resolve(props.get("FifoQueue", False), logical_id))
        return f"{logical_id}.fifo" if fifo else logical_id

    def secret_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties") or {}
        if "Name" in props:
            return self._string(props["Name"], "Name", logical_id)
        return f"{self.context.stack_name}-{logical_id}"

    def function_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties") or {}
        if "FunctionName" in props:
            return self._string(props["FunctionName"], "FunctionName", logical_id)
        return f"{self.context.stack_name}-{logical_id}"


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TemplateError(f"environment values must be scalars, got {value!r}")


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals merge: maps merge (resource wins), lists concatenate, scalars override."""
    merged: dict[str, Any] = copy.deepcopy(dict(global_props))
    for key, value in props.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + copy.deepcopy(value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_intrinsic(value: dict[str, Any]) -> bool:
    if len(value) != 1:
        return False
    key = next(iter(value))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


# ---------------------------------------------------------------------------- template


class Template:
    """A parsed SAM template, resolvable against parameter overrides and a `LocalContext`."""

    def __init__(self, data: dict[str, Any], root: Path) -> None:
        self.data = data
        self.root = root

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The raw Resources section."""
        resources: dict[str, dict[str, Any]] = self.data["Resources"]
        return resources

    def logical_ids(self, resource_type: str) -> list[str]:
        """Logical ids of every resource of `resource_type`, in template order."""
        return [lid for lid, res in self.resources.items() if res.get("Type") == resource_type]

    def parameter_values(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Defaults overlaid with `overrides`, checked against AllowedValues/AllowedPattern."""
        declared: dict[str, dict[str, Any]] = self.data.get("Parameters") or {}
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameter override(s): {', '.join(sorted(unknown))}")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif "Default" in spec:
                default = spec["Default"]
                value = ",".join(map(str, default)) if isinstance(default, list) else _env_text(default)
            else:
                continue
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [_env_text(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
            values[name] = value
        return values

    def resolve_tables(
        self,
        parameters: Mapping[str, str] | None = None,
        context: LocalContext | None = None,
    ) -> dict[str, Table]:
        """Only the tables (needs no parameter beyond what table properties use)."""
        resolver = _Resolver(self.data, self.parameter_values(parameters), context or LocalContext())
        return {
            lid: self._table(resolver, lid)
            for lid in self.logical_ids("AWS::DynamoDB::Table")
            if resolver.resource_enabled(lid)
        }

    def resolve(
        self,
        parameters: Mapping[str, str] | None = None,
        context: LocalContext | None = None,
    ) -> ResolvedTemplate:
        """Resolve the template. Raises `TemplateError` naming any unsupported construct."""
        ctx = context or LocalContext()
        params = self.parameter_values(parameters)
        resolver = _Resolver(self.data, params, ctx)
        conditions = {name: resolver.condition(name) for name in self.data.get("Conditions") or {}}

        def enabled(resource_type: str) -> list[str]:
            return [lid for lid in self.logical_ids(resource_type) if resolver.resource_enabled(lid)]

        tables = {lid: self._table(resolver, lid) for lid in enabled("AWS::DynamoDB::Table")}
        queues = {lid: self._queue(resolver, lid) for lid in enabled("AWS::SQS::Queue")}
        keys = {lid: self._key(resolver, lid) for lid in enabled("AWS::KMS::Key")}
        for alias_id in enabled("AWS::KMS::Alias"):
            props = resolver.resolve(self.resources[alias_id].get("Properties") or {}, alias_id)
            target = (self.resources[alias_id].get("Properties") or {}).get("TargetKeyId")
            target_id = target.get("Ref") if isinstance(target, dict) else None
            if target_id not in keys:
                raise TemplateError(f"{alias_id}: TargetKeyId must be a Ref to a key of this template")
            key = keys[target_id]
            keys[target_id] = Key(
                key.logical_id, key.description, key.key_spec, key.key_usage, key.policy,
                (*key.aliases, props["AliasName"]),
            )  # fmt: skip
        secrets = {lid: self._secret(resolver, lid) for lid in enabled("AWS::SecretsManager::Secret")}
        buses = {
            lid: EventBus(lid, resolver._physical(lid, "Ref", lid), resolver._physical(lid, "Arn", lid))
            for lid in enabled("AWS::Events::EventBus")
        }
        buckets = {
            lid: Bucket(lid, resolver._physical(lid, "Ref", lid), resolver._physical(lid, "Arn", lid))
            for lid in enabled("AWS::S3::Bucket")
        }
        receipt_rules = tuple(self._receipt_rule(resolver, lid, buckets) for lid in enabled("AWS::SES::ReceiptRule"))
        ignored = tuple(
            f"{lid} ({res.get('Type')})"
            for lid, res in self.resources.items()
            if res.get("Type") not in MODELLED_TYPES and resolver.resource_enabled(lid)
        )

        functions: dict[str, Function] = {}
        routes: list[HttpRoute] = []
        sqs_sources: list[SqsEventSource] = []
        schedules: list[Schedule] = []
        unsupported: list[str] = []
        apis = {lid: self._http_api(resolver, lid) for lid in enabled("AWS::Serverless::HttpApi")}
        for lid in enabled("AWS::Serverless::Function"):
            function = self._function(resolver, lid)
            functions[lid] = function
            for event_name, event in function.events.items():
                etype = event.get("Type")
                eprops = event.get("Properties") or {}
                where = f"{lid}.Events.{event_name}"
                if etype == "HttpApi":
                    routes.append(self._route(resolver, lid, event_name, eprops, apis, where))
                elif etype == "SQS":
                    sqs_sources.append(self._sqs_source(resolver, lid, event_name, eprops, queues, where))
                elif etype in ("Schedule", "ScheduleV2"):
                    schedules.append(self._schedule(resolver, lid, event_name, etype, eprops, where))
                else:
                    unsupported.append(f"{where} ({etype})")
        return ResolvedTemplate(
            parameters=params,
            conditions=conditions,
            functions=functions,
            routes=tuple(routes),
            sqs_sources=tuple(sqs_sources),
            schedules=tuple(schedules),
            tables=tables,
            queues=queues,
            keys=keys,
            secrets=secrets,
            unsupported_events=tuple(unsupported),
            buses=buses,
            buckets=buckets,
            receipt_rules=receipt_rules,
            ignored_resources=ignored,
        )

    # -- resources

    def _props(self, resolver: _Resolver, logical_id: str) -> dict[str, Any]:
        props = resolver.resolve(self.resources[logical_id].get("Properties") or {}, logical_id)
        if not isinstance(props, dict):
            raise TemplateError(f"{logical_id}: Properties must be a mapping")
        return props

    def _table(self, resolver: _Resolver, logical_id: str) -> Table:
        props = self._props(resolver, logical_id)
        name = resolver.table_name(logical_id)
        definition: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if definition["BillingMode"] == "PROVISIONED":
            definition["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(index_kind):
                indexes = []
                for index in props[index_kind]:
                    index = {
                        k: v
                        for k, v in index.items()
                        if k in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
                    }
                    if index_kind == "GlobalSecondaryIndexes" and definition["BillingMode"] == "PROVISIONED":
                        index["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
                    indexes.append(index)
                definition[index_kind] = indexes
        if "StreamSpecification" in props:
            definition["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        ttl = props.get("TimeToLiveSpecification") or {}
        ttl_attribute = ttl.get("AttributeName") if _truthy(ttl.get("Enabled", False)) else None
        arn = resolver._physical(logical_id, "Arn", logical_id)
        return Table(logical_id, name, definition, ttl_attribute, arn)

    def _queue(self, resolver: _Resolver, logical_id: str) -> Queue:
        props = self._props(resolver, logical_id)
        fifo = _truthy(props.get("FifoQueue", False))
        name = resolver.queue_name(logical_id)
        if fifo and not name.endswith(".fifo"):
            raise TemplateError(f"{logical_id}: a FIFO queue name must end in .fifo ({name})")
        redrive = props.get("RedrivePolicy")
        dlq: str | None = None
        max_receive: int | None = None
        if redrive:
            if isinstance(redrive, str):
                redrive = json.loads(redrive)
            dlq_arn = redrive["deadLetterTargetArn"]
            dlq = next(
                (
                    lid
                    for lid in self.logical_ids("AWS::SQS::Queue")
                    if resolver._physical(lid, "Arn", logical_id) == dlq_arn
                ),
                None,
            )
            if dlq is None:
                raise TemplateError(f"{logical_id}: RedrivePolicy must target a queue of this template")
            max_receive = int(redrive["maxReceiveCount"])
        retention = props.get("MessageRetentionPeriod")
        delay = props.get("DelaySeconds")
        return Queue(
            logical_id=logical_id,
            name=name,
            url=resolver._physical(logical_id, "Ref", logical_id),
            arn=resolver._physical(logical_id, "Arn", logical_id),
            fifo=fifo,
            content_based_deduplication=_truthy(props.get("ContentBasedDeduplication", False)),
            visibility_timeout=int(props.get("VisibilityTimeout", 30)),
            message_retention_period=int(retention) if retention is not None else None,
            delay_seconds=int(delay) if delay is not None else None,
            dead_letter_queue=dlq,
            max_receive_count=max_receive,
        )

    def _key(self, resolver: _Resolver, logical_id: str) -> Key:
        props = self._props(resolver, logical_id)
        policy = props.get("KeyPolicy")
        if isinstance(policy, str):
            policy = json.loads(policy)
        return Key(
            logical_id=logical_id,
            description=str(props.get("Description", "")),
            key_spec=str(props.get("KeySpec", "SYMMETRIC_DEFAULT")),
            key_usage=str(props.get("KeyUsage", "ENCRYPT_DECRYPT")),
            policy=policy,
        )

    def _secret(self, resolver: _Resolver, logical_id: str) -> Secret:
        props = self._props(resolver, logical_id)
        return Secret(
            logical_id=logical_id,
            name=resolver.secret_name(logical_id),
            description=str(props.get("Description", "")).strip(),
            secret_string=props.get("SecretString"),
            generate=props.get("GenerateSecretString"),
        )

    def _receipt_rule(self, resolver: _Resolver, logical_id: str, buckets: dict[str, Bucket]) -> ReceiptRule:
        props = self._props(resolver, logical_id)
        rule = props.get("Rule") or {}
        function_arns = {
            resolver._physical(lid, "Arn", logical_id): lid for lid in self.logical_ids("AWS::Serverless::Function")
        }
        bucket_names = {bucket.name for bucket in buckets.values()}
        actions: list[ReceiptAction] = []
        for index, action in enumerate(rule.get("Actions") or []):
            where = f"{logical_id}.Rule.Actions[{index}]"
            if not isinstance(action, dict) or len(action) != 1:
                raise TemplateError(f"{where}: an action has exactly one kind")
            ((kind, spec),) = action.items()
            kind = kind.removesuffix("Action")
            if kind == "S3":
                if spec["BucketName"] not in bucket_names:
                    raise TemplateError(f"{where}: BucketName must be a bucket of this template")
                actions.append(
                    ReceiptAction("S3", bucket=spec["BucketName"], object_key_prefix=spec.get("ObjectKeyPrefix", ""))
                )
            elif kind == "Lambda":
                arn = str(spec["FunctionArn"])
                if arn not in function_arns:
                    raise TemplateError(f"{where}: FunctionArn must be the Arn of a function of this template")
                actions.append(
                    ReceiptAction(
                        "Lambda",
                        function=function_arns[arn],
                        function_arn=arn,
                        invocation_type=str(spec.get("InvocationType", "Event")),
                    )
                )
            else:
                actions.append(ReceiptAction(kind))
        return ReceiptRule(
            logical_id=logical_id,
            name=resolver._physical(logical_id, "Ref", logical_id),
            rule_set=str(props["RuleSetName"]),
            recipients=tuple(str(r) for r in rule.get("Recipients") or ()),
            actions=tuple(actions),
            enabled=_truthy(rule.get("Enabled", False)),
            scan_enabled=_truthy(rule.get("ScanEnabled", False)),
            tls_policy=str(rule.get("TlsPolicy", "Optional")),
        )

    def _http_api(self, resolver: _Resolver, logical_id: str) -> dict[str, Any]:
        globals_api = (self.data.get("Globals") or {}).get("HttpApi") or {}
        raw = _merge_globals(globals_api, self.resources[logical_id].get("Properties") or {})
        auth = raw.get("Auth") or {}
        authorizers: dict[str, JwtAuthorizer | None] = {}
        for name, spec in (auth.get("Authorizers") or {}).items():
            where = f"{logical_id}.Auth.Authorizers.{name}"
            if "JwtConfiguration" not in spec:
                authorizers[name] = None  # Lambda authorizers: refused when a route uses one
                continue
            jwt_config = resolver.resolve(spec["JwtConfiguration"], where)
            audience = jwt_config.get("audience") or []
            if isinstance(audience, str):
                audience = [audience]
            authorizers[name] = JwtAuthorizer(
                name=name,
                issuer=str(jwt_config["issuer"]),
                audience=tuple(str(a) for a in audience),
                identity_source=str(
                    resolver.resolve(spec.get("IdentitySource", "$request.header.Authorization"), where)
                ),
            )
        default = auth.get("DefaultAuthorizer")
        return {"authorizers": authorizers, "default": default}

    def _function(self, resolver: _Resolver, logical_id: str) -> Function:
        globals_fn = (self.data.get("Globals") or {}).get("Function") or {}
        raw = _merge_globals(globals_fn, self.resources[logical_id].get("Properties") or {})
        where = logical_id
        code_uri = resolver.resolve(raw.get("CodeUri"), f"{where}.CodeUri")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: CodeUri must be a local path (S3 locations are not supported)")
        handler = resolver._string(raw.get("Handler"), "Handler", f"{where}.Handler")
        variables = resolver.resolve((raw.get("Environment") or {}).get("Variables") or {}, f"{where}.Environment")
        layers: list[Path] = []
        external: list[str] = []
        for index, layer in enumerate(raw.get("Layers") or []):
            if isinstance(layer, dict) and set(layer) == {"Ref"} and layer["Ref"] in self.resources:
                layer_res = self.resources[layer["Ref"]]
                if layer_res.get("Type") != "AWS::Serverless::LayerVersion":
                    raise TemplateError(f"{where}.Layers[{index}]: {layer['Ref']} is not a LayerVersion")
                content = resolver.resolve((layer_res.get("Properties") or {}).get("ContentUri"), layer["Ref"])
                if not isinstance(content, str):
                    raise TemplateError(f"{layer['Ref']}: ContentUri must be a local path")
                layers.append((self.root / content).resolve())
            else:
                external.append(str(resolver.resolve(layer, f"{where}.Layers[{index}]")))
        return Function(
            logical_id=logical_id,
            name=resolver.function_name(logical_id),
            code_uri=(self.root / code_uri).resolve(),
            handler=handler,
            runtime=str(resolver.resolve(raw.get("Runtime", LOCAL_RUNTIME), where)),
            timeout=int(resolver.resolve(raw.get("Timeout", 3), where)),
            memory_size=int(resolver.resolve(raw.get("MemorySize", 128), where)),
            environment={str(k): _env_text(v) for k, v in variables.items()},
            layers=tuple(layers),
            events=dict(raw.get("Events") or {}),
            external_layers=tuple(external),
            event_invoke=self._event_invoke(resolver, raw.get("EventInvokeConfig"), where),
        )

    def _event_invoke(self, resolver: _Resolver, raw: Any, where: str) -> AsyncInvokeConfig:
        config = resolver.resolve(raw or {}, f"{where}.EventInvokeConfig")
        on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
        queue: str | None = None
        if on_failure:
            destination = str(on_failure.get("Destination", ""))
            queue = next(
                (
                    lid
                    for lid in self.logical_ids("AWS::SQS::Queue")
                    if resolver._physical(lid, "Arn", where) == destination
                ),
                None,
            )
            if on_failure.get("Type", "SQS") != "SQS" or queue is None:
                raise TemplateError(f"{where}: the OnFailure destination must be an SQS queue of this template")
        return AsyncInvokeConfig(int(config.get("MaximumRetryAttempts", 2)), queue)

    # -- events

    def _route(
        self,
        resolver: _Resolver,
        function: str,
        event: str,
        raw: dict[str, Any],
        apis: dict[str, dict[str, Any]],
        where: str,
    ) -> HttpRoute:
        api_ref = raw.get("ApiId")
        if api_ref is None:
            if len(apis) != 1:
                raise TemplateError(f"{where}: HttpApi events without ApiId need exactly one HttpApi resource")
            api_id = next(iter(apis))
        elif isinstance(api_ref, dict) and api_ref.get("Ref") in apis:
            api_id = api_ref["Ref"]
        else:
            raise TemplateError(f"{where}: ApiId must be a Ref to an HttpApi of this template")
        props = resolver.resolve(raw, where)
        version = str(props.get("PayloadFormatVersion", "2.0"))
        if version != "2.0":
            raise TemplateError(f"{where}: PayloadFormatVersion {version} is not supported by the local stack")
        method = str(props.get("Method", "ANY")).upper()
        if method not in HTTP_METHODS:
            raise TemplateError(f"{where}: unknown method {method}")
        path = str(props.get("Path", "$default"))
        api = apis[api_id]
        auth = props.get("Auth") or {}
        authorizer_name = auth.get("Authorizer", api["default"])
        authorizer: JwtAuthorizer | None = None
        if authorizer_name and authorizer_name != "NONE":
            if authorizer_name not in api["authorizers"]:
                raise TemplateError(f"{where}: unknown authorizer {authorizer_name}")
            authorizer = api["authorizers"][authorizer_name]
            if authorizer is None:
                raise TemplateError(f"{where}: authorizer {authorizer_name} is not a JWT authorizer (unsupported)")
        return HttpRoute(
            api=api_id,
            method=method,
            path=path,
            function=function,
            event=event,
            authorizer=authorizer,
            authorization_scopes=tuple(auth.get("AuthorizationScopes") or ()),
            timeout_ms=int(props.get("TimeoutInMillis", 30000)),
        )

    def _sqs_source(
        self,
        resolver: _Resolver,
        function: str,
        event: str,
        raw: dict[str, Any],
        queues: dict[str, Queue],
        where: str,
    ) -> SqsEventSource:
        props = resolver.resolve(raw, where)
        arn = str(props["Queue"])
        queue = next((q for q in queues.values() if q.arn == arn), None)
        if queue is None:
            raise TemplateError(f"{where}: Queue must be the Arn of a queue of this template")
        return SqsEventSource(
            function=function,
            event=event,
            queue=queue.logical_id,
            queue_arn=arn,
            batch_size=int(props.get("BatchSize", 10)),
            function_response_types=tuple(props.get("FunctionResponseTypes") or ()),
            enabled=_truthy(props.get("Enabled", True)),
        )

    def _schedule(
        self,
        resolver: _Resolver,
        function: str,
        event: str,
        kind: str,
        raw: dict[str, Any],
        where: str,
    ) -> Schedule:
        props = resolver.resolve(raw, where)
        expression = props.get("ScheduleExpression" if kind == "ScheduleV2" else "Schedule")
        if not isinstance(expression, str):
            raise TemplateError(f"{where}: missing schedule expression")
        enabled = _truthy(props.get("Enabled", True))
        if "State" in props:
            enabled = str(props["State"]).upper() == "ENABLED"
        payload = props.get("Input")
        return Schedule(
            function=function,
            event=event,
            name=str(props.get("Name") or f"{function}-{event}"),
            kind=kind,
            expression=expression,
            input=str(payload) if payload is not None else None,
            enabled=enabled,
        )


def _throughput(value: Any) -> dict[str, int]:
    value = value or {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def load_template(path: Path) -> Template:
    """Parse the SAM template at `path`; relative CodeUri/ContentUri resolve against its folder."""
    path = Path(path)
    return Template(load_yaml(path), path.resolve().parent)
