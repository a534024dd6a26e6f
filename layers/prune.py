"""Trim the built layer: google-api-python-client ships ~600 discovery documents
(over 100 MB); a function needs only those of the APIs it calls."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

#: Discovery documents of the Google APIs crmsync calls (static discovery, no network).
KEEP_DISCOVERY = {"calendar.v3.json", "gmail.v1.json", "people.v1.json"}


def prune(root: Path) -> None:
    docs = root / "googleapiclient" / "discovery_cache" / "documents"
    if docs.is_dir():
        for doc in docs.iterdir():
            if doc.name not in KEEP_DISCOVERY:
                doc.unlink()
    for cache in list(root.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    prune(Path(sys.argv[1]))
