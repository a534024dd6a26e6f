"""F9 settings: the user's BCC logging address and the sender addresses that may log through it."""

from __future__ import annotations

from dataclasses import dataclass

from crmsync.dal.bcc import BccAddressStore, SenderAddressStore
from crmsync.dal.connections import ConnectionStore
from crmsync.domain import Principal
from crmsync.domain.mail_records import BccAddress, SenderAddress, SenderStatus
from crmsync.errors import Conflict, NotFound, Unprocessable
from crmsync.mail.addresses import new_local_part, new_verification_code, on_domain
from crmsync.security.secrets import sha256_hex

#: Added (not connected) sender addresses per user.
MAX_ADDED_SENDERS = 20
_CREATE_ATTEMPTS = 3


@dataclass(frozen=True)
class SenderVerification:
    """What the user needs to verify an added address: send a mail from it to the BCC
    address with the code in the subject."""

    sender: SenderAddress
    code: str
    bcc_address: str

    @property
    def instructions(self) -> str:
        return (
            f"From {self.sender.email}, send an email to {self.bcc_address} with {self.code} in the subject. "
            "When it arrives (and passes SPF, DKIM and DMARC for that address's domain) the address is verified; "
            "that email itself is not logged."
        )


class BccSettings:
    def __init__(
        self,
        *,
        addresses: BccAddressStore,
        senders: SenderAddressStore,
        connections: ConnectionStore,
        logging_domain: str,
    ) -> None:
        self._addresses = addresses
        self._senders = senders
        self._connections = connections
        self._domain = logging_domain

    def address(self, principal: Principal) -> BccAddress:
        """The user's address, issued on first use. Of concurrent first reads one issues it and
        every reader gets that one (the issue is a conditional put)."""
        domain = self._require_domain()
        for _ in range(_CREATE_ATTEMPTS):
            current = self._addresses.local_part(principal)
            if current is not None:
                return BccAddress(f"{current[0]}@{domain}", current[1])
            self._addresses.create(principal, new_local_part())
        raise Conflict("The BCC address could not be issued; try again.")

    def rotate(self, principal: Principal) -> BccAddress:
        """Issue a new address; from now on the old one logs nothing."""
        domain = self._require_domain()
        current = self._addresses.local_part(principal)
        if current is None:
            return self.address(principal)
        new = new_local_part()
        created_at = self._addresses.rotate(principal, current[0], new)
        return BccAddress(f"{new}@{domain}", created_at)

    def sender_addresses(self, principal: Principal) -> list[SenderAddress]:
        """Connected accounts' addresses first (always verified), then the added ones."""
        connected = sorted({c.email.lower() for c in self._connections.list(principal)})
        added = [s for s in self._senders.list(principal) if s.email not in connected]
        return [
            SenderAddress(email=e, status=SenderStatus.VERIFIED, source="connected_account", created_at=None)
            for e in connected
        ] + sorted(added, key=lambda s: s.email)

    def add_sender(self, principal: Principal, email: str) -> SenderVerification:
        """Add an address as pending and hand out its code (adding a pending one again issues
        a new code: the old one stops working)."""
        email = email.strip().lower()
        if on_domain(email, self._require_domain()):
            raise Unprocessable("An address on the logging domain cannot be a sender address.")
        if email in {c.email.lower() for c in self._connections.list(principal)}:
            raise Conflict(f"{email} is a connected account's address: it is already one of yours.")
        existing = self._senders.list(principal)
        if email not in {s.email for s in existing} and len(existing) >= MAX_ADDED_SENDERS:
            raise Unprocessable(f"At most {MAX_ADDED_SENDERS} sender addresses can be added; remove one first.")
        code = new_verification_code()
        sender = self._senders.put_pending(principal, email, sha256_hex(code))
        return SenderVerification(sender=sender, code=code, bcc_address=self.address(principal).address)

    def remove_sender(self, principal: Principal, email: str) -> None:
        email = email.strip().lower()
        if not self._senders.delete(principal, email):
            if email in {c.email.lower() for c in self._connections.list(principal)}:
                raise Unprocessable(f"{email} belongs to a connected account; disconnect the account instead.")
            raise NotFound(f"{email} is not one of your added sender addresses.")

    def _require_domain(self) -> str:
        if not self._domain:
            raise Unprocessable("BCC logging is not configured in this deployment (no logging domain).")
        return self._domain
