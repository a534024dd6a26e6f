"""The local stack's command line.

    python -m devstack up                     # make dev: everything on loopback, Ctrl-C stops
    python -m devstack invoke FUNCTION --event events/x.json
    python -m devstack token --tenant T --user U
    python -m devstack fire SCHEDULE

`invoke`, `token` and `fire` use the running stack (found through .devstack/state.json) when
it answers; `invoke` and `fire` otherwise start an ephemeral stack for the one call.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.stack import ROOT, Ports, Stack, google_available

DEMO_TENANT = "demo-tenant"
DEMO_USER = "demo-user"
BANNER_TOKEN_TTL = 12 * 3600


def state_path(root: Path) -> Path:
    """Where `up` records its endpoints and pid."""
    return root / ".devstack" / "state.json"


def template_path(args: argparse.Namespace) -> Path:
    """The template the command works on."""
    return Path(args.template).resolve() if args.template else Path(args.root).resolve() / "template.yaml"


def running_stack(root: Path, template: Path) -> dict[str, Any] | None:
    """The state of a running `up` of `template` that answers its health check, else None."""
    try:
        state: dict[str, Any] = json.loads(state_path(root).read_text())
        if state.get("template") != str(template):
            return None
        os.kill(int(state["pid"]), 0)
        with urllib.request.urlopen(f"{state['api_url']}/.devstack/health", timeout=2) as response:  # noqa: S310
            if json.load(response).get("status") == "ok":
                return state
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None
    return None


def demo_bcc_address(api_url: str, token: str) -> str | None:
    """The demo user's BCC logging address, when the API serves one (else None)."""
    request = urllib.request.Request(  # noqa: S310 - loopback API
        f"{api_url}/v1/settings/bcc-address", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            address = json.load(response).get("address")
    except (OSError, ValueError, AttributeError):  # URLError and HTTPError (e.g. 404) are OSErrors
        return None
    return address if isinstance(address, str) else None


def _post(url: str, body: Any, timeout: float = 900) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback control API
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{url}: {exc.code} {exc.read().decode(errors='replace')}") from None


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def caldav_banner(stack: Stack) -> list[str]:
    """The CalDAV lines of `make dev`'s banner, after seeding the demo users (idempotent):
    where to connect, and the demo Apple IDs with their app-specific passwords (fixed demo
    values on a loopback server, printed on purpose; never a real user's)."""
    if stack.caldav is None:
        return ["  CalDAV          off"]
    from devstack.caldav.demo import seed_demo

    users = seed_demo(stack.caldav)
    lines = [
        f"  CalDAV (iCloud) {stack.caldav.base_url}  (Radicale; its partition host {stack.caldav.partition_url})",
        f"  CalDAV control  {stack.caldav.base_url}/_caldav/  (faults, quirks, users, calls: docs/LOCAL.md)",
    ]
    lines += [f"  Apple ID        {u.email}  app-specific password {u.password}  (Home, Work)" for u in users]
    return lines


def microsoft_banner(stack: Stack) -> list[str]:
    """The Microsoft emulator's address and demo accounts (no passwords: its consent page
    lists the accounts to pick)."""
    if stack.microsoft is None:
        return ["  Microsoft emulator off"]
    accounts = []
    for user in stack.microsoft_accounts:
        kind = "personal" if user.get("personal") else "work"
        if user.get("admin_consent_required"):
            kind += ", its organisation requires admin consent"
        accounts.append(f"  Microsoft       {user['email']}  ({kind})")
    emulator = stack.microsoft
    return [
        f"  Microsoft       {emulator.base_url}  (identity platform and Graph, https; CA {emulator.ca_bundle})",
        f"  Microsoft ctl   {stack.microsoft.base_url}/_microsoft/  (users, grants, clock: docs/MICROSOFT.md)",
        *accounts,
    ]


def cmd_up(args: argparse.Namespace) -> int:
    """Run the stack in the foreground until interrupted."""
    root = Path(args.root).resolve()
    use_google = google_available() and not args.no_google
    stack = Stack(
        root,
        template_path=template_path(args),
        ports=Ports(
            api=args.api_port,
            google=args.google_port,
            aws=args.aws_port,
            dynamodb=args.dynamodb_port,
            smtp=args.smtp_port,
            caldav=args.caldav_port,
            caldav_partition=args.caldav_port + 1,
            microsoft=args.microsoft_port,
        ),
        google=use_google,
        caldav=not args.no_caldav,
        microsoft=not args.no_microsoft,
        echo_logs=not args.quiet,
        background=True,
        prewarm=True,
        persist_dir=root / ".devstack" / "data" if args.persist else None,
        schedule_scale=args.schedule_scale,
        sqs_visibility_timeout=args.visibility_timeout,
    )
    # Explicitly: a shell starting us in the background would have SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    state_file = state_path(root)
    try:
        stack.start()
        state = {
            "pid": os.getpid(),
            "template": str(template_path(args)),
            "api_url": stack.api_url,
            "aws_endpoint": stack.aws_endpoint,
            "dynamodb_endpoint": stack.dynamodb_endpoint,
            "google_url": stack.google.base_url if stack.google is not None else None,
            "caldav_url": stack.caldav.base_url if stack.caldav is not None else None,
            "microsoft_url": stack.microsoft.base_url if stack.microsoft is not None else None,
            "issuer": stack.issuer.issuer if stack.issuer else None,
            "smtp": f"127.0.0.1:{stack.smtp.port}" if stack.smtp is not None else None,
        }
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(state, indent=2))
        token = stack.issue_token(DEMO_TENANT, DEMO_USER, ttl=BANNER_TOKEN_TTL)
        lines = [
            "",
            "crmsync is running locally. Ctrl-C stops everything.",
            f"  Settings page   {stack.api_url}/settings/integrations#token={token}",
            f"                  (tenant {DEMO_TENANT}, user {DEMO_USER}; the token is valid 12 h)",
            f"  HTTP API        {stack.api_url}",
            f"  AWS (moto)      {stack.aws_endpoint}",
            f"  DynamoDB Local  {stack.dynamodb_endpoint}",
        ]
        if stack.google is not None:
            stack.google.seed_demo_data()
            accounts = ", ".join(a["email"] for a in stack.google_accounts)
            lines += [
                f"  Google emulator {stack.google.base_url}",
                f"  Google data     {stack.google.base_url}/_emulator/ui  (act as the demo users in Google)",
                f"  Google accounts {accounts}",
            ]
        else:
            lines.append("  Google emulator off")
        lines += caldav_banner(stack)
        lines += microsoft_banner(stack)
        if stack.ses is not None and stack.smtp is not None:
            lines.append(f"  SMTP (SES)      127.0.0.1:{stack.smtp.port}  (mail for {', '.join(stack.ses.domains)})")
            address = demo_bcc_address(stack.api_url, token)
            if address is not None:
                lines.append(f"  BCC address     {address}  (the demo user's: Cc or Bcc it to log a mail)")
        lines.append(f"  Functions       {', '.join(stack.template.functions)}")
        sys.stdout.write("\n".join(lines) + "\n\n")
        sys.stdout.flush()
        while True:
            signal.pause()
    except KeyboardInterrupt:
        sys.stdout.write("\nstopping...\n")
    finally:
        stack.stop()
        if state_file.exists():
            try:
                if json.loads(state_file.read_text()).get("pid") == os.getpid():
                    state_file.unlink()
            except (OSError, ValueError):
                pass
    return 0


def _ephemeral(args: argparse.Namespace) -> Stack:
    return Stack(
        Path(args.root).resolve(),
        template_path=template_path(args),
        google=google_available(),
        echo_logs=True,
        log_stream=sys.stderr,
    )


def cmd_invoke(args: argparse.Namespace) -> int:
    """Invoke one function with an event file (the local `sam local invoke`)."""
    root = Path(args.root).resolve()
    if args.event == "-":
        event = json.load(sys.stdin)
    elif args.event:
        event = json.loads(Path(args.event).read_text())
    else:
        event = {}
    state = running_stack(root, template_path(args))
    if state is not None:
        document = _post(f"{state['api_url']}/.devstack/functions/{args.function}/invoke", event)
        _print_json(document["payload"] if document["ok"] else document["error"])
        return 0 if document["ok"] else 1
    with _ephemeral(args) as stack:
        if args.function not in stack.template.functions:
            sys.stderr.write(f"unknown function {args.function}; known: {', '.join(stack.template.functions)}\n")
            return 2
        result = stack.invoke(args.function, event)
    _print_json(result.response())
    return 0 if result.ok else 1


def cmd_token(args: argparse.Namespace) -> int:
    """Print a bearer token from the running stack's issuer."""
    state = running_stack(Path(args.root).resolve(), template_path(args))
    if state is None:
        sys.stderr.write("no running stack: start one with `make dev` (python -m devstack up)\n")
        return 1
    body = {"tenant_id": args.tenant, "user_id": args.user, "ttl": args.ttl}
    sys.stdout.write(_post(f"{state['api_url']}/.devstack/issuer/token", body)["token"] + "\n")
    return 0


def cmd_fire(args: argparse.Namespace) -> int:
    """Fire a schedule now."""
    root = Path(args.root).resolve()
    state = running_stack(root, template_path(args))
    if state is not None:
        document = _post(f"{state['api_url']}/.devstack/schedules/{args.schedule}/fire", {"ticks": args.ticks})
        for tick in document.get("ticks", [document]):
            _print_json(tick["payload"] if tick["ok"] else tick["error"])
        return 0 if all(t["ok"] for t in document.get("ticks", [document])) else 1
    with _ephemeral(args) as stack:
        results = stack.fire_ticks(args.schedule, args.ticks)
    for result in results:
        _print_json(result.response())
    return 0 if all(r.ok for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="python -m devstack", description="The crmsync local stack.")
    parser.add_argument("--root", default=str(ROOT), help="repository root (node_modules, .devstack/)")
    parser.add_argument("--template", default=None, help="SAM template (default: ROOT/template.yaml)")
    verbs = parser.add_subparsers(dest="verb", required=True)

    dev = Ports.dev()
    up = verbs.add_parser("up", help="run everything on loopback (make dev)")
    up.add_argument("--api-port", type=int, default=dev.api)
    up.add_argument("--google-port", type=int, default=dev.google)
    up.add_argument("--aws-port", type=int, default=dev.aws)
    up.add_argument("--dynamodb-port", type=int, default=dev.dynamodb)
    up.add_argument("--smtp-port", type=int, default=dev.smtp, help="the local SES's SMTP server")
    up.add_argument("--no-google", action="store_true", help="do not start the Google emulator")
    up.add_argument(
        "--caldav-port", type=int, default=dev.caldav, help="the CalDAV server (its partition host: the next port)"
    )
    up.add_argument("--no-caldav", action="store_true", help="do not start the CalDAV server")
    up.add_argument("--microsoft-port", type=int, default=dev.microsoft, help="the Microsoft emulator (https)")
    up.add_argument("--no-microsoft", action="store_true", help="do not start the Microsoft emulator")
    up.add_argument(
        "--persist",
        action="store_true",
        help="keep DynamoDB data, the Google emulator state and the CalDAV users and calendars in .devstack/data",
    )
    up.add_argument(
        "--schedule-scale",
        type=float,
        default=float(os.environ.get("DEVSTACK_SCHEDULE_SCALE", "1")),
        help=(
            "multiply rate() periods (e.g. 0.01 fires the 5-minute schedules every 3 s, each one period"
            " later in scheduled time: a 6-hour sweep of every account then takes ~4 min)"
        ),
    )
    up.add_argument("--visibility-timeout", type=int, default=None, help="override every queue's VisibilityTimeout")
    up.add_argument("--quiet", action="store_true", help="do not echo function logs")
    up.set_defaults(func=cmd_up)

    invoke = verbs.add_parser("invoke", help="invoke a function with an event (like sam local invoke)")
    invoke.add_argument("function", help="logical id, e.g. ApiFunction")
    invoke.add_argument("--event", "-e", help="event JSON file ('-' for stdin); default {}")
    invoke.set_defaults(func=cmd_invoke)

    token = verbs.add_parser("token", help="print a bearer JWT from the running stack")
    token.add_argument("--tenant", default=DEMO_TENANT)
    token.add_argument("--user", default=DEMO_USER)
    token.add_argument("--ttl", type=int, default=3600)
    token.set_defaults(func=cmd_token)

    fire = verbs.add_parser("fire", help="fire a schedule now")
    fire.add_argument("schedule", help="schedule name, event logical id, or Function.Event")
    fire.add_argument(
        "--ticks",
        type=int,
        default=1,
        help="fire it as scheduled for this many consecutive periods from now: a sweep takes one slot"
        " of the accounts per tick (72 ticks check every connection, 12 sweep every mailbox, 3 every"
        " contacts account)",
    )
    fire.set_defaults(func=cmd_fire)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
