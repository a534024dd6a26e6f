"""The SAM template resolver, on the real template.yaml and on small inline templates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devstack.template import LocalContext, Template, TemplateError, load_template

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"JwtIssuer": "http://127.0.0.1:3000/.devstack/issuer", "GoogleClientId": "client-1"}


@pytest.fixture(scope="module")
def real() -> Template:
    return load_template(ROOT / "template.yaml")


def inline(tmp_path: Path, body: str) -> Template:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return load_template(path)


def test_every_function_gets_the_globals_resolved(real: Template) -> None:
    resolved = real.resolve(REQUIRED, LocalContext(table_prefix="p_", aws_endpoint="http://127.0.0.1:5001"))
    assert resolved.functions
    for function in resolved.functions.values():
        env = function.environment
        assert env["CONNECTIONS_TABLE"] == "p_ConnectionsTable"
        assert env["OAUTH_STATES_TABLE"] == "p_OAuthStatesTable"
        assert env["SYNC_QUEUE_URL"] == "http://127.0.0.1:5001/123456789012/SyncQueue.fifo"
        assert env["STAGE"] == "dev"
        assert env["GOOGLE_CLIENT_ID"] == "client-1"
        assert env["GOOGLE_CLIENT_SECRET_ARN"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
        assert env["POWERTOOLS_SERVICE_NAME"]  # the function's own variable, merged with Globals
        assert function.layers == ((ROOT / "layers").resolve(),)
        assert function.runtime == "python3.11"
        assert all(isinstance(value, str) for value in env.values())
    timeouts = {lid: f.timeout for lid, f in resolved.functions.items()}
    assert timeouts["ApiFunction"] == 10  # Globals
    assert timeouts["SyncWorkerFunction"] == 60  # the function's own
    memory = {lid: f.memory_size for lid, f in resolved.functions.items()}
    assert memory["ApiFunction"] == 512  # Globals
    assert memory["GoogleWebhookFunction"] == 256  # the function's own


def test_if_picks_the_branch_by_condition(real: Template) -> None:
    default = real.resolve(REQUIRED, LocalContext(api_id="abc123"))
    assert default.conditions == {"HasPublicBaseUrl": False}
    assert default.functions["ApiFunction"].environment["PUBLIC_BASE_URL"] == (
        "https://abc123.execute-api.us-east-1.amazonaws.com"
    )
    custom = real.resolve({**REQUIRED, "PublicBaseUrl": "https://sync.example.com"})
    assert custom.conditions == {"HasPublicBaseUrl": True}
    assert custom.functions["ApiFunction"].environment["PUBLIC_BASE_URL"] == "https://sync.example.com"


def test_routes_auth_and_event_sources(real: Template) -> None:
    resolved = real.resolve({**REQUIRED, "Stage": "local"})
    routes = {route.route_key: route for route in resolved.routes}
    assert routes["GET /settings/{page}"].authorizer is None
    assert routes["GET /oauth/{provider}/callback"].authorizer is None
    private = routes["GET /v1/integrations"]
    assert private.function == "ApiFunction"
    assert private.authorizer is not None
    assert private.authorizer.issuer == REQUIRED["JwtIssuer"]
    assert private.authorizer.audience == ("crmsync",)
    (source,) = resolved.sqs_sources
    assert (source.function, source.queue, source.batch_size) == ("SyncWorkerFunction", "SyncQueue", 10)
    assert source.report_batch_item_failures
    (schedule,) = resolved.schedules
    assert schedule.name == "crmsync-local-connection-health"
    assert schedule.kind == "ScheduleV2"
    assert schedule.expression == "rate(6 hours)"
    assert schedule.input == '{"job": "connection_health"}'


def test_resources(real: Template) -> None:
    resolved = real.resolve({**REQUIRED, "Stage": "local"})
    queue = resolved.queues["SyncQueue"]
    assert queue.fifo
    assert queue.name == "SyncQueue.fifo"
    assert (queue.dead_letter_queue, queue.max_receive_count) == ("SyncDeadLetterQueue", 5)
    assert queue.visibility_timeout == 360
    assert resolved.queues["SyncDeadLetterQueue"].message_retention_period == 1209600
    assert resolved.keys["TokenKey"].aliases == ("alias/crmsync-local-tokens",)
    assert resolved.keys["TokenKey"].policy is not None
    assert resolved.keys["TokenKey"].policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    states = resolved.tables["OAuthStatesTable"]
    assert states.ttl_attribute == "expires_at"
    assert states.definition["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert resolved.tables["ConnectionsTable"].ttl_attribute is None


def test_bound_physical_ids_are_used(real: Template) -> None:
    context = LocalContext(physical_ids={"TokenKey": "key-1", "GoogleClientSecret": "arn:secret-1"})
    env = real.resolve(REQUIRED, context).functions["ApiFunction"].environment
    assert env["TOKEN_KEY_ID"] == "key-1"
    assert env["GOOGLE_CLIENT_SECRET_ARN"] == "arn:secret-1"


def test_parameter_errors_name_the_parameter(real: Template) -> None:
    with pytest.raises(TemplateError, match="JwtIssuer"):
        real.resolve({"GoogleClientId": "x"})
    with pytest.raises(TemplateError, match="LogLevel"):
        real.resolve({**REQUIRED, "LogLevel": "LOUD"})
    with pytest.raises(TemplateError, match="Stage"):
        real.resolve({**REQUIRED, "Stage": "Not Allowed!"})
    with pytest.raises(TemplateError, match="Nope"):
        real.resolve({**REQUIRED, "Nope": "1"})


SHORT_FORMS = """
Parameters:
  Names: {Type: String, Default: "a,b,c"}
  Env: {Type: String, Default: dev}
Mappings:
  Sizes:
    dev: {Memory: 256}
Conditions:
  IsDev: !Equals [!Ref Env, dev]
  IsProd: !Not [!Condition IsDev]
  Both: !And [!Condition IsDev, !Not [!Condition IsProd]]
  Either: !Or [!Condition IsProd, !Equals [x, y]]
Resources:
  Queue:
    Type: AWS::SQS::Queue
  ProdOnlyTable:
    Type: AWS::DynamoDB::Table
    Condition: IsProd
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      MemorySize: !FindInMap [Sizes, !Ref Env, Memory]
      Environment:
        Variables:
          SECOND: !Select [1, !Split [",", !Ref Names]]
          JOINED: !Join ["-", [x, !Ref "AWS::Region", !Ref "AWS::AccountId"]]
          ENCODED: !Base64 hello
          QUEUE_ARN: !GetAtt Queue.Arn
          QUEUE_NAME: !GetAtt [Queue, QueueName]
          LITERAL: !Sub "${!NotAVar}-${AWS::Partition}-${AWS::URLSuffix}-${AWS::StackName}"
          WITH_VARS: !Sub ["${Greeting} ${Queue.QueueName}", {Greeting: hi}]
          BOTH: !If [Both, "yes", "no"]
          EITHER: !If [Either, "yes", "no"]
          DROPPED: !If [IsProd, "x", !Ref "AWS::NoValue"]
          NUMBER: 5
          FLAG: true
"""


def test_short_form_intrinsics(tmp_path: Path) -> None:
    template = inline(tmp_path, SHORT_FORMS)
    resolved = template.resolve(context=LocalContext(region="eu-west-1", stack_name="s1"))
    function = resolved.functions["Fn"]
    assert function.memory_size == 256
    assert function.timeout == 3  # SAM's default
    assert function.code_uri == (tmp_path / "src").resolve()
    assert function.environment == {
        "SECOND": "b",
        "JOINED": "x-eu-west-1-123456789012",
        "ENCODED": "aGVsbG8=",
        "QUEUE_ARN": "arn:aws:sqs:eu-west-1:123456789012:Queue",
        "QUEUE_NAME": "Queue",
        "LITERAL": "${NotAVar}-aws-amazonaws.com-s1",
        "WITH_VARS": "hi Queue",
        "BOTH": "yes",
        "EITHER": "no",
        "NUMBER": "5",
        "FLAG": "true",
    }
    assert "ProdOnlyTable" not in resolved.tables  # its Condition is false


def test_unsupported_constructs_are_named(tmp_path: Path) -> None:
    template = inline(
        tmp_path,
        """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Environment:
                Variables:
                  OTHER: !ImportValue other-stack-output
        """,
    )
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        template.resolve()
    role = inline(
        tmp_path,
        """
        Resources:
          Role:
            Type: AWS::IAM::Role
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Environment: {Variables: {ROLE: !GetAtt Role.Arn}}
        """,
    )
    with pytest.raises(TemplateError, match=r"Role \(AWS::IAM::Role\)"):
        role.resolve()


def test_unknown_event_types_are_listed_not_fatal(tmp_path: Path) -> None:
    template = inline(
        tmp_path,
        """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Events:
                Upload: {Type: S3, Properties: {Bucket: !Ref Bucket, Events: s3:ObjectCreated:*}}
          Bucket:
            Type: AWS::S3::Bucket
        """,
    )
    assert template.resolve().unsupported_events == ("Fn.Events.Upload (S3)",)


def test_tables_only(real: Template) -> None:
    tables = real.resolve_tables(context=LocalContext(table_prefix="x_"))
    assert {t.name for t in tables.values()} == {"x_ConnectionsTable", "x_OAuthStatesTable"}
