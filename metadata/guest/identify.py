"""Who is asking: Neutron-style signed headers, else the source address (through trusted
proxies only). The result is an instance uuid or an error; never a guess.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from multidict import CIMultiDictProxy

from metadata.coherence import Coherence, LocalCoherence
from metadata.errors import (
    BadRequest,
    BadSignature,
    Forbidden,
    InstanceNotFound,
    StoreUnavailable,
)
from metadata.guest.last_known import LastKnownIdentities
from metadata.loader import RequestCost, SliceLoader
from metadata.lru import LRU
from metadata.mget_batch import Values
from metadata.records import Slice
from metadata.sources import SliceRead, SliceSource

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
INSTANCE_ID = "X-Instance-ID"
TENANT_ID = "X-Tenant-ID"
SIGNATURE = "X-Instance-ID-Signature"
FORWARDED_FOR = "X-Forwarded-For"
MAX_FORWARDED_ENTRIES = 16
# Identity by address needs only the owner and its generation.
NO_SLICES: frozenset[Slice] = frozenset()


def nothing_more() -> frozenset[Slice]:
    return frozenset()


# The slices a request will need, asked only when identity goes to the database.
Wanted = Callable[[], frozenset[Slice]]


@dataclass(frozen=True, slots=True)
class Caller:
    instance_uuid: str
    # the instance's generation as identity learned it: the cache keys on it
    generation: int
    # the guest's address as far as we can tell (the peer, or the trusted forwarded one)
    address: str


# The shared coherence's round trip, and who is asking given its answer (None: ask again
# the full way).
CallerSoon = tuple[asyncio.Future[Values], Callable[[Values], Caller | None]]
# What `identify` decides from: (instance id, tenant, signature) or (the client address,).
SharedKey = tuple[str, ...]


def sign(secret: str, instance_id: str) -> str:
    # aiohttp hands undecodable header bytes over as surrogates; sign the bytes the proxy
    # sent rather than raise on them (a guest must never turn a header into a 500).
    message = instance_id.encode("utf-8", "surrogateescape")
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def normalise_address(text: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 (a dual-stack socket) becomes IPv4; an
    IPv6 peer's zone (`fe80::5%eth0`, which a stored fixed IP never carries) is dropped."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise BadRequest(f"not an IP address: {text.strip()[:64]!r}") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        if address.scope_id is not None:
            return str(ipaddress.IPv6Address(int(address)))
    return str(address)


def single_header(headers: CIMultiDictProxy[str], name: str) -> str | None:
    values = headers.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once")
    return values[0] if values else None


class IdentityResolver:
    def __init__(
        self,
        source: SliceSource,
        loader: SliceLoader,
        coherence: Coherence,
        *,
        shared_secret: str | None,
        trusted_proxies: Sequence[Network],
        max_remembered: int = 100_000,
        stale_if_error: float = 0.0,
        tenant_of: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        """`tenant_of`: where the source knows an instance's project without reading the
        instance (Nova's instance mappings); None or its None answer: the core slice."""
        self._source = source
        self._tenant_of = tenant_of
        self._loader = loader
        self._coherence = coherence
        self._secret = shared_secret
        self._trusted = tuple(trusted_proxies)
        # instance uuid -> (signature, tenant, generation) already verified: one entry per
        # instance at most, and only for signatures that were valid, so forged headers
        # cannot grow it.
        self._verified: LRU[str, tuple[str, str, int]] = LRU(max_remembered)
        self.last_known = LastKnownIdentities(stale_if_error, max_remembered)
        # A shared (Redis) map answering is a fresh confirmation worth remembering for when
        # Redis and the database are both down; the local map never fails, so skip the cost.
        self._confirm_shared = not isinstance(coherence, LocalCoherence)
        self._client_addresses: LRU[tuple[str, ...], str] = LRU(max_remembered)

    def is_trusted_proxy(self, address: str) -> bool:
        if not self._trusted:
            return False
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self._trusted)

    def client_address(self, peer: str, headers: CIMultiDictProxy[str]) -> str:
        """The peer, or when the peer is a trusted proxy the rightmost forwarded address
        that is not itself a trusted proxy: entries a guest forged on the left are never
        reached."""
        return self.address_of(peer, headers.getall(FORWARDED_FOR, ()))

    def address_of(self, peer: str, forwarded: Sequence[str]) -> str:
        # Parsing addresses costs more than the rest of a warm request: the answer for a
        # (peer, X-Forwarded-For) pair is remembered, in a bounded map.
        key = (peer, *forwarded)
        address = self._client_addresses.get(key)
        if address is None:
            address = self._client_address(peer, forwarded)
            self._client_addresses.set(key, address)
        return address

    def _client_address(self, peer: str, forwarded: Sequence[str]) -> str:
        peer = normalise_address(peer)
        if not forwarded or not self.is_trusted_proxy(peer):
            return peer
        entries = [e for value in forwarded for e in value.split(",") if e.strip()]
        if len(entries) > MAX_FORWARDED_ENTRIES:
            raise BadRequest(f"{FORWARDED_FOR} has too many entries")
        address = peer
        for entry in reversed(entries):
            address = normalise_address(entry)
            if not self.is_trusted_proxy(address):
                break
        return address

    def known_caller(self, peer: str, headers: CIMultiDictProxy[str]) -> Caller | None:
        """Who is asking, when this process knows it without waiting on anything: a
        signature verified before, at the instance's current generation, or an address
        whose owner it holds. None: `identify` decides, and refuses whatever is wrong."""
        coherence = self._coherence
        if not coherence.answers_at_once:
            return None
        if self._secret is not None and INSTANCE_ID in headers:
            verified = self._verified_before(headers)
            if verified is None:
                return None
            uuid, _, remembered = verified
            if coherence.known_generation(uuid) != remembered:
                return None
            return Caller(uuid, remembered, self.address_of(peer, ()))
        address = self._address_at_once(peer, headers)
        known = None if address is None else coherence.known_address(address)
        return None if known is None else Caller(known[0], known[1], address or "")

    def caller_soon(self, peer: str, headers: CIMultiDictProxy[str]) -> CallerSoon | None:
        """`known_caller` for a shared coherence (Redis): the round trip this tick's
        requests share, and who is asking given its answer (None: ask `identify`)."""
        coherence = self._coherence
        if self._secret is not None and INSTANCE_ID in headers:
            verified = self._verified_before(headers)
            future = None if verified is None else coherence.generation_soon(verified[0])
            if verified is None or future is None:
                return None
            uuid, tenant, remembered = verified
            address = self.address_of(peer, ())

            def by_signature(values: Values) -> Caller | None:
                if coherence.generation_from(uuid, values) != remembered:
                    return None
                self.last_known.confirm_instance(uuid, tenant, remembered)
                return Caller(uuid, remembered, address)

            return future, by_signature
        at = self._address_at_once(peer, headers)
        soon = None if at is None else coherence.address_soon(at)
        if at is None or soon is None:
            return None
        guess, future = soon

        def by_address(values: Values) -> Caller | None:
            known = coherence.address_from(guess, values)
            if known is None:
                return None
            self.last_known.confirm_address(at, known[0], known[1])
            return Caller(known[0], known[1], at)

        return future, by_address

    def shared_key(self, peer: str, headers: CIMultiDictProxy[str]) -> SharedKey | None:
        """For a caller not known yet: everything `identify` decides from, so that requests
        arriving together with the same key can share one `identify` (same key, same
        answer). Only where the caller is then known at once (known_caller), and never for
        a signature that does not verify: forged headers cannot hold a guest's requests
        back. None: leave it to `identify`."""
        if not self._coherence.answers_at_once:
            return None
        if self._secret is not None and INSTANCE_ID in headers:
            instance_id = headers.getall(INSTANCE_ID)
            signature = headers.getall(SIGNATURE, ())
            tenant = headers.getall(TENANT_ID, ())
            if len(instance_id) != 1 or len(signature) != 1 or len(tenant) != 1:
                return None
            try:
                # Constant time; a non-ASCII signature (TypeError) is for `identify`.
                valid = hmac.compare_digest(sign(self._secret, instance_id[0]), signature[0])
            except TypeError:
                return None
            return (instance_id[0], tenant[0], signature[0]) if valid else None
        address = self._address_at_once(peer, headers)
        return None if address is None else (address,)

    def _verified_before(self, headers: CIMultiDictProxy[str]) -> tuple[str, str, int] | None:
        """(instance id, tenant, generation) of signed headers exactly as verified before:
        no HMAC. None: anything else, for `identify` to check (and refuse)."""
        instance_id = headers.getall(INSTANCE_ID)
        signature = headers.getall(SIGNATURE, ())
        tenant = headers.getall(TENANT_ID, ())
        if len(instance_id) != 1 or len(signature) != 1 or len(tenant) != 1:
            return None
        remembered = self._verified.get(instance_id[0])
        if remembered is None or remembered[1] != tenant[0]:
            return None
        try:
            # Constant time; a remembered signature is hex, so a non-ASCII one (TypeError)
            # is no match, for the full chain to refuse.
            if not hmac.compare_digest(remembered[0], signature[0]):
                return None
        except TypeError:
            return None
        return instance_id[0], tenant[0], remembered[2]

    def _address_at_once(self, peer: str, headers: CIMultiDictProxy[str]) -> str | None:
        if not self._source.identifies_by_address:
            return None
        try:
            return self.address_of(peer, headers.getall(FORWARDED_FOR, ()))
        except BadRequest:
            return None

    async def identify(
        self,
        peer: str,
        headers: CIMultiDictProxy[str],
        cost: RequestCost | None = None,
        wanted: Wanted = nothing_more,
    ) -> Caller:
        """Who is asking. When that takes the database, the slices `wanted()` names come
        in the same statement (the request's own and what its boot will go on to need)."""
        if self._secret is not None and INSTANCE_ID in headers:
            return await self._from_signature(peer, headers, cost, wanted)
        if not self._source.identifies_by_address:
            # Nova's databases hold no index from an address to an instance: only Neutron
            # does, through its metadata agents' signed headers.
            raise BadRequest(
                f"{INSTANCE_ID}, {TENANT_ID} and {SIGNATURE} are required: this "
                "source cannot tell an instance by its address"
            )
        address = self.client_address(peer, headers)
        known = await self._coherence.address(address)
        if known is not None:
            if self._confirm_shared:
                self.last_known.confirm_address(address, known[0], known[1])
            return Caller(known[0], known[1], address)
        epoch = await self._coherence.epoch()
        try:
            matches = await self._loader.by_address(
                address, wanted(), epoch, cost, lambda found: self._found(epoch, address, found)
            )
        except StoreUnavailable as exc:
            last = self.last_known.address(address, exc)
            if last is None:
                raise
            return Caller(last[0], last[1], address)
        if not matches:
            raise InstanceNotFound(f"no instance has the address {address}")
        if len(matches) > 1:
            raise Forbidden(f"the address {address} belongs to several instances; refusing")
        uuid, generation = matches[0].uuid, matches[0].generation
        self.last_known.confirm_address(address, uuid, generation)
        return Caller(uuid, generation, address)

    async def _found(self, epoch: int, address: str, matches: list[SliceRead]) -> None:
        """In the read's flight: the owner remembered before its waiters resume."""
        if len(matches) == 1:
            await self._coherence.remember(epoch, matches[0].uuid, matches[0].generation, address)

    async def _from_signature(
        self, peer: str, headers: CIMultiDictProxy[str], cost: RequestCost | None, wanted: Wanted
    ) -> Caller:
        assert self._secret is not None
        instance_id = single_header(headers, INSTANCE_ID) or ""
        signature = single_header(headers, SIGNATURE)
        tenant = single_header(headers, TENANT_ID)
        if not self._source.identifies_by_address and (signature is None or tenant is None):
            # As Nova: all three headers, or 400, before the signature is looked at.
            raise BadRequest(f"{INSTANCE_ID}, {TENANT_ID} and {SIGNATURE} are all required")
        if signature is None:
            raise BadSignature("instance id signature is missing or wrong")
        # Constant time, and on bytes: a non-ASCII header must not raise on the way. A
        # signature verified before for this instance is compared as it is (no new HMAC).
        presented = signature.encode("utf-8", "surrogateescape")
        remembered = self._verified.get(instance_id)
        known = remembered[0].encode() if remembered is not None else None
        if not (known is not None and hmac.compare_digest(known, presented)) and not (
            hmac.compare_digest(sign(self._secret, instance_id).encode(), presented)
        ):
            raise BadSignature("instance id signature is missing or wrong")
        if tenant is None:
            raise BadRequest(f"{TENANT_ID} is required with {INSTANCE_ID}")
        address = self.address_of(peer, ())
        generation = await self._coherence.generation(instance_id)
        if generation is not None and remembered == (
            signature,
            tenant,
            generation,
        ):
            if self._confirm_shared:
                self.last_known.confirm_instance(instance_id, tenant, generation)
            return Caller(instance_id, generation, address)
        epoch = await self._coherence.epoch()
        if self._tenant_of is not None:
            # The source knows the project without reading the instance (Nova's cached
            # mapping): a wrong tenant is refused before any cell is read.
            project = await self._tenant_of(instance_id)
            if project is not None and project != tenant:
                raise InstanceNotFound("no such instance")
        try:
            core = await self._loader.core(
                instance_id,
                generation,
                cost,
                wanted(),
                epoch,
                lambda read: self._coherence.remember(epoch, instance_id, read),
            )
        except StoreUnavailable as exc:
            # The signature is verified above; only the tenant check needs the last known row.
            last = self.last_known.instance(instance_id, tenant, exc)
            if last is None:
                raise
            return Caller(instance_id, last, address)
        if core is None or core.project_id != tenant:
            # A tenant mismatch looks exactly like an unknown instance, as in Nova.
            raise InstanceNotFound("no such instance")
        await self._coherence.remember(epoch, core.uuid, core.generation)
        self._verified.set(core.uuid, (signature, tenant, core.generation))
        self.last_known.confirm_instance(core.uuid, tenant, core.generation)
        return Caller(core.uuid, core.generation, address)
