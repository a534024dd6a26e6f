"""The never-log list as plain data: entries normalised like the mail parser's addresses, a
domain entry covering its subdomains and nothing that merely ends with its letters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.domain.never_log import InvalidEntry, NeverLog, entry_kind, normalise_entry
from crmsync.mail.mailboxes import to_address

FAST = settings(max_examples=300, deadline=None)

LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(lambda s: "--" not in s[2:4])
DOMAIN = st.lists(LABEL, min_size=1, max_size=3).map(lambda labels: ".".join([*labels, "example"]))
LOCAL = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True).filter(lambda s: ".." not in s and s[-1] != ".")


def random_case(draw: st.DrawFn, text: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c for c in text)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Anna@Example.COM", "anna@example.com"),
        ("  anna@example.com  ", "anna@example.com"),
        ("Example.com", "example.com"),
        ("example.com.", "example.com"),
        ("@example.com", "example.com"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("jörg@Bücher.example", "jörg@xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_entries_are_spelled_as_the_mail_parser_spells_addresses(typed: str, stored: str) -> None:
    assert normalise_entry(typed) == stored
    if "@" in stored:
        # the parser's own spelling of the same address is the entry
        address = to_address("", typed.strip())
        assert address is not None
        assert address.email == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "example",  # one label: no mailbox is on it
        "com",
        "anna@",
        "@",
        "anna@@example.com",
        "anna@example",
        "anna smith@example.com",
        "http://example.com",
        "example.com/path",
        "example.com:25",
        "*.example.com",
        "exa_mple.com",
        "-example.com",
        "192.168.1.1",
        "a" * 64 + ".example",  # a label over 63 characters
        "x" * 400 + "@example.com",
        "example..com",
    ],
)
def test_garbage_is_refused_with_a_reason(typed: str) -> None:
    with pytest.raises(InvalidEntry) as refused:
        normalise_entry(typed)
    assert str(refused.value)


def test_an_address_entry_blocks_that_mailbox_only() -> None:
    never = NeverLog.of(["anna@example.com"])
    assert never.blocks("anna@example.com")
    assert never.blocks("ANNA@Example.Com")
    assert not never.blocks("anna2@example.com")
    assert not never.blocks("bob@example.com")
    assert not never.blocks("anna@sub.example.com")
    assert entry_kind("anna@example.com") == "address"


def test_a_domain_entry_blocks_the_domain_and_its_subdomains_only() -> None:
    never = NeverLog.of(["example.com"])
    assert entry_kind("example.com") == "domain"
    for blocked in ("a@example.com", "a@EU.Example.com", "a@x.y.example.com", "a@example.com."):
        assert never.blocks(blocked), blocked
    for free in ("a@notexample.com", "a@example.com.evil.test", "a@example.co", "a@xample.com", "example.com"):
        assert not never.blocks(free), free


def test_unicode_and_punycode_spellings_are_one_domain() -> None:
    assert NeverLog.of(["bücher.example"]).blocks("jörg@XN--BCHER-KVA.example")
    assert NeverLog.of(["xn--bcher-kva.example"]).blocks("jörg@mail.Bücher.example")


def test_the_empty_list_blocks_nothing_and_stored_garbage_is_left_out() -> None:
    assert not NeverLog().blocks("anna@example.com")
    never = NeverLog.of(["not a domain", "", "Example.com", "example.com"])
    assert never.entries == ("example.com",)
    assert len(never) == 1


@FAST
@given(data=st.data(), domain=DOMAIN, local=LOCAL, sub=st.lists(LABEL, max_size=3))
def test_a_domain_entry_blocks_every_subdomain_in_any_case(
    data: st.DataObject, domain: str, local: str, sub: list[str]
) -> None:
    entry = random_case(data.draw, domain) + data.draw(st.sampled_from(["", "."]))
    never = NeverLog.of([data.draw(st.sampled_from(["", "@"])) + entry])
    host = ".".join([*sub, domain])
    email = random_case(data.draw, f"{local}@{host}") + data.draw(st.sampled_from(["", "."]))
    assert never.blocks(email)


@FAST
@given(domain=DOMAIN, local=LOCAL, prefix=LABEL, suffix=LABEL)
def test_a_domain_entry_never_blocks_a_domain_that_only_shares_letters(
    domain: str, local: str, prefix: str, suffix: str
) -> None:
    never = NeverLog.of([domain])
    # "notexample.com" for "example.com": the same ending without a dot before it
    assert not never.blocks(f"{local}@{prefix}{domain}")
    # "example.com.evil.test": the entry as the start of another domain
    assert not never.blocks(f"{local}@{domain}.{suffix}.test")
    # the parent of the entry is not blocked either
    parent = domain.partition(".")[2]
    if "." in parent:
        assert not never.blocks(f"{local}@{parent}")


@FAST
@given(local=LOCAL, other=LOCAL, domain=DOMAIN)
def test_an_address_entry_blocks_exactly_that_address(local: str, other: str, domain: str) -> None:
    never = NeverLog.of([f"{local}@{domain}"])
    assert never.blocks(f"{local.upper()}@{domain.upper()}")
    assert never.blocks(f"{other}@{domain}") == (other == local)
    assert not never.blocks(f"{local}@sub.{domain}")


@FAST
@given(st.text(max_size=60))
def test_normalising_never_raises_anything_but_invalid_entry_and_is_idempotent(typed: str) -> None:
    try:
        entry = normalise_entry(typed)
    except InvalidEntry:
        return
    assert normalise_entry(entry) == entry
    assert entry == entry.strip().lower()
    assert NeverLog.of([typed]).entries == (entry,)
