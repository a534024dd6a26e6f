"""Sizes of the `sam build` artifacts (unzipped and zipped), per function and layer."""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"


@dataclass(frozen=True)
class SizeFigure:
    artifact: str
    files: int
    unzipped_bytes: int
    zipped_bytes: int
    discovery_documents: int


def measure(directory: Path) -> SizeFigure:
    files = [p for p in directory.rglob("*") if p.is_file()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(directory))
    docs = [p for p in files if "discovery_cache" in p.parts and p.suffix == ".json"]
    return SizeFigure(
        artifact=directory.name,
        files=len(files),
        unzipped_bytes=sum(os.path.getsize(p) for p in files),
        zipped_bytes=buffer.tell(),
        discovery_documents=len(docs),
    )


def artifacts() -> list[SizeFigure]:
    if not BUILD.is_dir():
        return []
    return [measure(d) for d in sorted(BUILD.iterdir()) if d.is_dir()]
