"""Checks the settings-page browser tests share: a screenshot of the state a test reached, and
an accessibility check by axe-core (the npm package, injected into the page)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
#: Where the browser tests leave their screenshots (ignored by git; named in README and docs/TESTING.md).
SCREENSHOTS = ROOT / ".devstack" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: axe-core's WCAG 2.0/2.1/2.2 A and AA rules plus its best practices; every impact level fails a test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def shoot(page: Page, name: str) -> Path:
    """Save the whole page as .devstack/screenshots/<name>-<width>px.png and return its path."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    path = SCREENSHOTS / f"{name}-{width}px.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Page) -> list[str]:
    """What axe-core finds wrong on the page as it is now, one line per rule: rule, impact, the
    elements (empty when the page passes)."""
    assert AXE.is_file(), f"{AXE} is missing: `make deps` installs the npm package axe-core"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Not page.add_script_tag: the pages' Content-Security-Policy (script-src 'self') refuses
        # an inline script, rightly. Evaluated through the DevTools protocol, axe runs beside it.
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    results = page.evaluate(
        "(tags) => axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })",
        AXE_TAGS,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — " + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in results["violations"]
    ]
