"""Google Contacts sync (F10): the mirror of the contacts account's contacts, its cursor, the
import candidates and the CRM contact changes still to push, all under the user's partition."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from crmsync.models.base import ConnectionsTableItem
from crmsync.models.mail import PhoneMap

GCONTACT_SK_PREFIX = "GCONTACT#"
CSYNC_SK_PREFIX = "CSYNC#"
CANDIDATE_SK_PREFIX = "CANDIDATE#"
CPENDING_SK_PREFIX = "CPENDING#"
CINTENT_SK_PREFIX = "CINTENT#"


def gcontact_prefix(connection_id: str) -> str:
    return f"{GCONTACT_SK_PREFIX}{connection_id}#"


def gcontact_sk(connection_id: str, resource_name: str) -> str:
    return gcontact_prefix(connection_id) + resource_name


def csync_sk(connection_id: str) -> str:
    return CSYNC_SK_PREFIX + connection_id


class GoogleContactItem(ConnectionsTableItem):
    """One contact of the contacts account as Google last gave it (sk
    ``GCONTACT#<connection>#<resourceName>``): the base of the next three-way merge. Emails are
    normalised (invalid ones left out), phones read like the CRM's."""

    connection_id = UnicodeAttribute()
    resource_name = UnicodeAttribute()
    etag = UnicodeAttribute(null=True)
    #: Google's source ``updateTime``.
    updated_at = UTCDateTimeAttribute(null=True)
    given_name = UnicodeAttribute(null=True)
    family_name = UnicodeAttribute(null=True)
    display_name = UnicodeAttribute(null=True)
    emails = ListAttribute(of=UnicodeAttribute, null=True)
    phones = ListAttribute(of=PhoneMap, null=True)
    organization = UnicodeAttribute(null=True)
    title = UnicodeAttribute(null=True)
    #: The CRM contact id we created it with (ours); never offered for import.
    key = UnicodeAttribute(null=True)
    #: The CRM contact it is linked to (ours, or matched by email or phone).
    contact_id = UnicodeAttribute(null=True)
    #: Its CRM twin was deleted (not ours, so it stays in Google): its candidate starts declined.
    unlinked_by_crm = BooleanAttribute(default=False)


class ContactSyncStateItem(ConnectionsTableItem):
    """The contacts sync's cursor of one connection (sk ``CSYNC#<connection>``). Saved only
    after every page and every push were applied, conditioned on its version: two workers can
    never both advance it."""

    connection_id = UnicodeAttribute()
    sync_token = UnicodeAttribute(null=True)
    #: The CRM's contact group in the account (``contactGroups/…``).
    group_resource_name = UnicodeAttribute(null=True)
    last_success_at = UTCDateTimeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    last_error_at = UTCDateTimeAttribute(null=True)
    full_syncs = NumberAttribute(default=0)
    #: Contacts mirrored so far by a full sync under way (absent when none runs).
    contacts_so_far = NumberAttribute(null=True)
    version = VersionAttribute()


class CandidateItem(ConnectionsTableItem):
    """A Google contact (or several sharing an email) offered for import (sk
    ``CANDIDATE#<id>``): only what the review shows, its members and the user's choices."""

    status = UnicodeAttribute()
    given_name = UnicodeAttribute(null=True)
    family_name = UnicodeAttribute(null=True)
    display_name = UnicodeAttribute(null=True)
    emails = ListAttribute(of=UnicodeAttribute, null=True)
    phones = ListAttribute(of=UnicodeAttribute, null=True)
    organization = UnicodeAttribute(null=True)
    #: ``<connection>#<resourceName>`` of each Google contact it stands for.
    members = ListAttribute(of=UnicodeAttribute)
    selected = BooleanAttribute(default=False)
    contact_type = UnicodeAttribute(null=True)
    consent = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    #: When the sync first wrote it (absent on rows older than the field: they count as
    #: existing at any answer). An answer declines only rows created at or before it.
    created_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()


CANDIDATE_COUNTS_SK = "CANDCOUNT"


class CandidateCountsItem(ConnectionsTableItem):
    """How many of the user's candidates are offered, declined and imported (sk
    ``CANDCOUNT``), as of ``as_of``: the review's total without a read of every candidate.
    Written whole, only over an older snapshot (``attribute_not_exists(as_of) OR as_of <
    :mine``), by the contacts sync (from its rebuild) and by a recount after every other
    status writer's batch."""

    offered = NumberAttribute()
    declined = NumberAttribute()
    imported = NumberAttribute()
    #: When the snapshot was taken (the recount's query began; the sync's read of the
    #: candidates began).
    as_of = UTCDateTimeAttribute()


class ContactPendingItem(ConnectionsTableItem):
    """A CRM contact changed (or deleted) since the contacts sync last pushed it (sk
    ``CPENDING#<contact id>``), written in the contact's own transaction; the sync deletes it,
    conditioned on ``mark``, once pushed. A deleted contact's mark keeps its Google link."""

    mark = UnicodeAttribute()
    deleted = BooleanAttribute(default=False)
    connection_id = UnicodeAttribute(null=True)
    resource_name = UnicodeAttribute(null=True)
    ours = BooleanAttribute(default=False)


REVIEW_IMPORT_SK = "REVIEW#import"


class ReviewImportItem(ConnectionsTableItem):
    """The user's last import from the review (sk ``REVIEW#import``): which action, how many
    rows it imports and how many are done (the page shows the progress), and when."""

    action = UnicodeAttribute()
    total = NumberAttribute()
    done = NumberAttribute()
    failed = NumberAttribute(default=0)
    state = UnicodeAttribute()
    #: Offered rows the answer declined (set once its job declined them; absent before).
    declined = NumberAttribute(null=True)
    started_at = UTCDateTimeAttribute()
    finished_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()


class CreateIntentItem(ConnectionsTableItem):
    """A create in Google that failed or lost its answer (sk ``CINTENT#<contact id>``):
    Google may hold a contact with that key the sync has not met yet. Met once its CRM contact
    is gone, that contact is deleted in Google (ours, for a contact the CRM deleted). Dropped
    after :data:`crmsync.sync.contact_sync.INTENT_KEPT` (Google's listings show writes within
    minutes), or on disconnect."""

    at = UTCDateTimeAttribute()
