"""The SAM template resolver, on the real template.yaml and on small inline templates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devstack.template import AsyncInvokeConfig, LocalContext, ReceiptRule, Template, TemplateError, load_template

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
    assert routes["GET /settings/contacts/review"].authorizer is None
    assert routes["GET /oauth/{provider}/callback"].authorizer is None
    private = routes["GET /v1/integrations"]
    assert private.function == "ApiFunction"
    assert private.authorizer is not None
    assert private.authorizer.issuer == REQUIRED["JwtIssuer"]
    assert private.authorizer.audience == ("crmsync",)
    (source,) = resolved.sqs_sources
    assert (source.function, source.queue, source.batch_size) == ("SyncWorkerFunction", "SyncQueue", 10)
    assert source.report_batch_item_failures
    # Every schedule ticks every 5 minutes and passes Scheduler's scheduled time; each job
    # reads its slot of that tick (crmsync.domain.sweeps).
    at = '"at": "<aws.scheduler.scheduled-time>"'
    assert [(s.name, s.kind, s.expression, s.input) for s in resolved.schedules] == [
        (f"crmsync-local-{name}", "ScheduleV2", "rate(5 minutes)", f'{{"job": "{job}", {at}}}')
        for name, job in [
            ("connection-health", "connection_health"),
            ("push-sweep", "push_sweep"),
            ("contacts-sync", "contacts_sync"),
            ("mail-sync", "mail_sync"),
            ("calendar-poll", "calendar_poll"),
        ]
    ]


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
    idempotency = resolved.tables["IdempotencyTable"]
    assert idempotency.ttl_attribute == "expiration"
    assert idempotency.definition["BillingMode"] == "PAY_PER_REQUEST"
    assert resolved.functions["ApiFunction"].environment["IDEMPOTENCY_TABLE"] == "IdempotencyTable"


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
    assert {t.name for t in tables.values()} == {"x_ConnectionsTable", "x_OAuthStatesTable", "x_IdempotencyTable"}


def test_event_bus_mail_bucket_and_ses_receipt_rule(real: Template) -> None:
    resolved = real.resolve({**REQUIRED, "Stage": "local", "LoggingDomain": "log.test.example"})
    bus = resolved.buses["CrmEventBus"]
    assert (bus.name, bus.arn) == ("crmsync-local", "arn:aws:events:us-east-1:123456789012:event-bus/crmsync-local")
    bucket = resolved.buckets["MailBucket"]
    assert bucket.arn == f"arn:aws:s3:::{bucket.name}"
    (rule,) = resolved.receipt_rules
    assert (rule.name, rule.rule_set) == ("crmsync-local-bcc-logging", "crmsync-local")
    assert rule.recipients == ("log.test.example",)
    assert (rule.enabled, rule.scan_enabled, rule.tls_policy) == (True, True, "Require")
    store, invoke = rule.actions  # SES runs them in this order
    assert (store.kind, store.bucket, store.object_key_prefix) == ("S3", bucket.name, "inbound/")
    assert (invoke.kind, invoke.function, invoke.invocation_type) == ("Lambda", "InboundMailFunction", "Event")
    assert invoke.function_arn == "arn:aws:lambda:us-east-1:123456789012:function:crmsync-local-InboundMailFunction"
    assert resolved.functions["InboundMailFunction"].event_invoke == AsyncInvokeConfig(2, "MailDeadLetterQueue")
    assert resolved.functions["ApiFunction"].event_invoke == AsyncInvokeConfig()  # Lambda's defaults
    assert not resolved.queues["MailDeadLetterQueue"].fifo  # async destinations cannot be FIFO queues
    for function in resolved.functions.values():
        env = function.environment
        assert env["EVENT_BUS_NAME"] == "crmsync-local"
        assert env["MAIL_BUCKET"] == bucket.name
        assert env["LOGGING_DOMAIN"] == "log.test.example"
    assert {
        "MailBucketPolicy (AWS::S3::BucketPolicy)",
        "InboundMailSesPermission (AWS::Lambda::Permission)",
    } <= set(resolved.ignored_resources)


def test_receipt_rule_recipients_match_like_ses() -> None:
    rule = ReceiptRule("R", "r", "set", ("example.com", ".sub.example.org", "one@example.net"), ())
    assert rule.matches("a@example.com")
    assert rule.matches("A@Example.COM")
    assert not rule.matches("a@x.example.com")  # a domain does not cover its subdomains
    assert rule.matches("a@x.sub.example.org")  # ".domain" covers only its subdomains
    assert not rule.matches("a@sub.example.org")
    assert rule.matches("one@example.net")
    assert not rule.matches("two@example.net")
    assert ReceiptRule("R", "r", "set", (), ()).matches("anyone@anywhere.test")  # no recipients: all


MAIL_RULES = """
Resources:
  Bucket: {Type: AWS::S3::Bucket, Properties: {BucketName: raw-mail}}
  Bus: {Type: AWS::Events::EventBus, Properties: {Name: !Sub "bus-${AWS::Region}"}}
  Dlq: {Type: AWS::SQS::Queue}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      EventInvokeConfig:
        MaximumRetryAttempts: 0
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: __DLQ__
      Environment: {Variables: {BUS_ARN: !GetAtt Bus.Arn, BUCKET_ARN: !GetAtt Bucket.Arn, RULE_SET: !Ref Set}}
  Set: {Type: AWS::SES::ReceiptRuleSet}
  Rule:
    Type: AWS::SES::ReceiptRule
    Properties:
      RuleSetName: !Ref Set
      Rule:
        Recipients: [a@example.com]
        Actions:
          - AddHeaderAction: {HeaderName: X-Seen, HeaderValue: "yes"}
          - S3Action:
              BucketName: __BUCKET__
          - LambdaAction:
              FunctionArn: __FUNCTION__
"""


def mail_rules(
    tmp_path: Path, dlq: str = "!GetAtt Dlq.Arn", bucket: str = "!Ref Bucket", function: str = "!GetAtt Fn.Arn"
) -> Template:
    body = MAIL_RULES.replace("__DLQ__", dlq).replace("__BUCKET__", bucket).replace("__FUNCTION__", function)
    return inline(tmp_path, body)


def test_mail_resources_defaults_and_references(tmp_path: Path) -> None:
    resolved = mail_rules(tmp_path).resolve(context=LocalContext(region="eu-west-1", stack_name="s1"))
    env = resolved.functions["Fn"].environment
    assert env == {
        "BUS_ARN": "arn:aws:events:eu-west-1:123456789012:event-bus/bus-eu-west-1",
        "BUCKET_ARN": "arn:aws:s3:::raw-mail",
        "RULE_SET": "s1-Set",
    }
    assert resolved.functions["Fn"].event_invoke == AsyncInvokeConfig(0, "Dlq")
    (rule,) = resolved.receipt_rules
    assert (rule.name, rule.enabled, rule.scan_enabled, rule.tls_policy) == ("s1-Rule", False, False, "Optional")
    assert [action.kind for action in rule.actions] == ["AddHeader", "S3", "Lambda"]
    assert rule.actions[1].object_key_prefix == ""


def test_mail_resources_must_point_into_the_template(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="FunctionArn"):
        mail_rules(tmp_path, function="arn:aws:lambda:us-east-1:123456789012:function:elsewhere").resolve()
    with pytest.raises(TemplateError, match="BucketName"):
        mail_rules(tmp_path, bucket="someone-elses-bucket").resolve()
    with pytest.raises(TemplateError, match="OnFailure"):
        mail_rules(tmp_path, dlq="arn:aws:sns:us-east-1:123456789012:topic").resolve()
