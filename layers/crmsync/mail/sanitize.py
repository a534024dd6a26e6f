"""HTML bodies made safe to show inside the CRM, and their plain-text rendering.

nh3 (the Rust ammonia sanitiser; bleach is deprecated) parses like a browser, so what it lets
through is what a browser would see. The allow-list keeps basic formatting, tables and plain
links; it drops scripts, event handlers, styles (CSS can load resources and overlay the page),
forms, frames and every URL that would load something when the message is opened: remote
images (tracking pixels) go, inline ``cid:`` and raster ``data:`` images stay.
"""

from __future__ import annotations

import html
import re

import nh3

_TAGS = {
    *("a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del"),
    *("div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol"),
    *("p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot"),
    *("th", "thead", "tr", "tt", "u", "ul"),
}
_ATTRIBUTES = {
    "*": {"dir", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "ol": {"start"},
}
#: Removed together with their content (the other unknown tags are unwrapped, text kept).
_DROPPED_WITH_CONTENT = {
    *("script", "style", "title", "noscript", "template", "iframe", "object", "embed", "svg", "math"),
    *("textarea", "select", "button", "head"),
}
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}
_INLINE_IMAGE = re.compile(r"(?:cid:|data:image/(?:png|gif|jpeg|jpg|webp);base64,)", re.IGNORECASE)
_LINK = re.compile(r"(?:https?|mailto|tel):", re.IGNORECASE)

_BLOCK_END = re.compile(r"<br\s*/?>|</(?:p|div|tr|li|h[1-6]|table|blockquote|pre|dt|dd)\s*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TRUNCATION_TRIES = 4


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Second line after the scheme allow-list: data:/cid: only as inline images, links only
    to the web, mail and phone, images never remote."""
    if tag == "img" and attribute == "src":
        return value if _INLINE_IMAGE.match(value.strip()) else None
    if attribute == "href":
        return value if _LINK.match(value.strip()) else None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_DROPPED_WITH_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes=_URL_SCHEMES,
    url_relative="deny",
    link_rel="noopener noreferrer",
    strip_comments=True,
)
_TEXT_ONLY = nh3.Cleaner(tags=set(), clean_content_tags=_DROPPED_WITH_CONTENT, attributes={})


def sanitise_html(source: str, max_chars: int) -> tuple[str, bool]:
    """The safe HTML, at most ``max_chars`` long, and whether it had to be truncated.

    Truncation happens on the input, never by cutting sanitised output (which could leave half
    a tag for a later concatenation to complete); escaping can lengthen the result, so the cut
    moves back until the output fits.
    """
    truncated = len(source) > max_chars
    budget = max_chars
    for _ in range(_TRUNCATION_TRIES):
        cleaned = _CLEANER.clean(source[:budget])
        if len(cleaned) <= max_chars:
            return cleaned, truncated
        truncated = True
        budget = max(0, budget * max_chars // len(cleaned) - 16)
    return "", True


def html_to_text(source: str) -> str:
    """A readable plain-text rendering (line breaks kept) for messages that have only HTML."""
    text = html.unescape(_TEXT_ONLY.clean(_BLOCK_END.sub("\n", source)))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------- text fit to store and show

#: Lone surrogates: what undecodable bytes become when a decoder escapes them.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
#: Control characters (C0, DEL, C1) other than tab and line feed, which bodies legitimately have.
_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: Every control character: a one-line value (subject, name, filename) has none.
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(value: str) -> str:
    """A body fit to store: valid Unicode (an undecodable byte left as a surrogate becomes
    U+FFFD), line feeds for line breaks, no NUL or other control character but tab and
    line feed."""
    value = _SURROGATES.sub("\ufffd", value).replace("\r\n", "\n").replace("\r", "\n")
    return _BODY_CONTROLS.sub("", value)


def clean_line(value: str) -> str:
    """A one-line value fit to store (subject, display name, filename): valid Unicode, no
    control character (line breaks and tabs become spaces), whitespace collapsed."""
    value = _SURROGATES.sub("\ufffd", value)
    value = _LINE_CONTROLS.sub(lambda m: " " if m.group().isspace() else "", value)
    return " ".join(value.split())
