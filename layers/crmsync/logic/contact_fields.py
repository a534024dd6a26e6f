"""Reading what users and providers give as contact fields: emails lower-cased and checked,
phones in E.164 (with the tenant's region for a number without a country code) or kept as
typed when they cannot be read as a number."""

from __future__ import annotations

from collections.abc import Iterable

from crmsync.domain.contacts import Phone, normalise_email
from crmsync.errors import Unprocessable

#: Regions phonenumbers knows (ISO 3166-1 alpha-2), checked on the way in.
FALLBACK_REGION = "US"


def known_region(region: str) -> bool:
    import phonenumbers

    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def phone(raw: str, region: str) -> Phone:
    """The number in E.164 when phonenumbers reads it as a valid number (with ``region`` for
    one without a country code); otherwise kept raw, unchanged but trimmed."""
    import phonenumbers

    text = raw.strip()
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return Phone(raw=text)
    if not phonenumbers.is_valid_number(number):
        return Phone(raw=text)
    return Phone(raw=text, e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def phones(values: Iterable[str], region: str) -> tuple[Phone, ...]:
    """Each number read (see :func:`phone`), without repeats of one number."""
    read: dict[str, Phone] = {}
    for value in values:
        if value and value.strip():
            number = phone(value, region)
            read.setdefault(number.key, number)
    return tuple(read.values())


def emails(values: Iterable[str]) -> tuple[str, ...]:
    """Each address normalised (without repeats); Unprocessable names the first that is not
    an email address."""
    out: list[str] = []
    for value in values:
        try:
            email = normalise_email(value)
        except ValueError as exc:
            raise Unprocessable(str(exc)[:200]) from None
        if email not in out:
            out.append(email)
    return tuple(out)
