"""Run the Google emulator in the foreground: ``python -m devstack.google --port 8089``."""

from __future__ import annotations

import argparse
import logging
import threading

from devstack.google.emulator import GoogleEmulator

log = logging.getLogger("devstack.google")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start the emulator, optionally seed it, and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devstack.google", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--client-id", help="register this OAuth client at start")
    parser.add_argument("--client-secret", help="secret of --client-id")
    parser.add_argument("--redirect-uri", action="append", default=[], help="redirect URI of --client-id (repeatable)")
    parser.add_argument("--no-demo-accounts", action="store_true", help="do not seed demo accounts")
    parser.add_argument("--verbose", action="store_true", help="log each request (method and path only)")
    args = parser.parse_args(argv)
    if bool(args.client_id) != bool(args.client_secret):
        parser.error("--client-id and --client-secret go together")

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    emulator = GoogleEmulator(host=args.host, port=args.port).start()
    if not args.no_demo_accounts:
        emulator.seed_demo_accounts()
    if args.client_id:
        emulator.register_client(args.client_id, args.client_secret, args.redirect_uri)
    for name, url in emulator.endpoints.items():
        log.info("%-13s %s", name, url)
    log.info("control API  %s/_emulator/ (health, clients, accounts, grants, clock, issued, ...)", emulator.base_url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
