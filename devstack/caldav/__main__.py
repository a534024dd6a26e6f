"""``python -m devstack.caldav``: the CalDAV dev server (Radicale behind the fault layer) on
free loopback ports until its standard input ends; prints ``ready <base url>`` once it
listens (devstack/caldav/remote.py starts it this way)."""

from __future__ import annotations

import sys

from devstack.caldav.server import CalDavServer


def main() -> None:
    with CalDavServer() as server:
        sys.stdout.write(f"ready {server.base_url}\n")
        sys.stdout.flush()
        sys.stdin.read()


if __name__ == "__main__":
    main()
