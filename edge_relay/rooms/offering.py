"""A peer on a connection where this relay makes every offer (so there is never glare): a participant,
or another relay that dialed us (the accepting end of a cascade link).

Each offer holds a ``recvonly`` m-line per thing the peer publishes and a ``sendonly`` m-line per track
it receives. When the answer arrives, new publish m-lines become :class:`PublishedTrack` objects and new
receive m-lines become :class:`Subscription` objects on the others' tracks. Changes made while an offer
is out are batched into the next offer. What the peer publishes, and how it is keyed (a participant's
source, a linked relay's track id), is the subclass's business.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.sdp import SessionDescription

from edge_relay.rooms.signals import Offers, OfferSlot
from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from edge_relay.sfu.simulcast import offer_simulcast
from edge_relay.sfu.transport import PeerTransport
from meetup_protocol.signalling import TrackInfo

log = logging.getLogger("edge_relay.offering")


@dataclass
class EgressSlot:
    """A ``sendonly`` m-line carrying one track to the peer."""

    transceiver: RTCRtpTransceiver
    track: PublishedTrack
    info: TrackInfo
    subscription: Subscription | None = None
    quality: str = "high"  # the best the peer wants of it (a simulcast source; kept until bound)


@dataclass
class IngressSlot:
    """A ``recvonly`` m-line where the peer publishes one thing (``key``)."""

    transceiver: RTCRtpTransceiver
    key: str
    track: PublishedTrack | None = None


class OfferingPeer(ABC):
    """The relay's side of one connection it negotiates by offering."""

    def __init__(self, offers: Offers, transport: PeerTransport) -> None:
        self.offers = offers
        self.transport = transport
        self.publish_slots: dict[str, IngressSlot] = {}
        self.receive_slots: dict[str, EgressSlot] = {}  # by track id
        self.negotiation = 0
        self.awaiting_answer: int | None = None
        self.closed = False
        self._dirty = False
        self._unpublished = False  # a publish m-line went inactive: the peer must hear it (an offer)
        #: One offer at a time: two callers (our own join, another participant's new track) must not
        #: interleave at createOffer's await and send two offers, of which the peer answers the stale one.
        self._offering = asyncio.Lock()
        transport.on_lost = self._lost

    # --- what the subclass decides ---------------------------------------------------------------------

    @abstractmethod
    def wanted_publish(self) -> set[str]:
        """Keys of what the peer should publish (one m-line each)."""

    @abstractmethod
    def publish_codecs(self, key: str) -> tuple[str, list[Any]]:
        """(kind, codec capabilities) offered on the m-line where ``key`` is published."""

    @abstractmethod
    def publish_slot(self, key: str) -> OfferSlot:
        """What the offer says of the m-line where ``key`` is published."""

    def simulcast_keys(self) -> set[str]:
        """Keys of what the peer is asked to publish as simulcast layers (none unless overridden)."""
        return set()

    @abstractmethod
    def published_id(self, key: str) -> tuple[str, str]:
        """(track id, kind) of the track published as ``key``."""

    @abstractmethod
    def track_info(self, key: str, track: PublishedTrack) -> TrackInfo: ...

    @abstractmethod
    def wanted_receive(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        """The tracks the peer should receive now."""

    @abstractmethod
    async def published(self, infos: list[TrackInfo]) -> None:
        """New tracks of the peer are flowing (an answer bound them)."""

    @abstractmethod
    async def _lost(self) -> None:
        """The connection failed or closed by itself."""

    # --- what others see -------------------------------------------------------------------------------

    @property
    def tracks(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        return [
            (slot.track, self.track_info(key, slot.track))
            for key, slot in self.publish_slots.items()
            if slot.track is not None
        ]

    # --- negotiation -----------------------------------------------------------------------------------

    async def negotiate(self) -> None:
        """Bring the connection in line with what the peer publishes and should receive."""
        async with self._offering:
            await self._offer()

    async def _offer(self) -> None:
        if self.closed:
            return
        if self.awaiting_answer is not None:
            self._dirty = True
            return
        self._dirty = False
        changed = self._add_publish_slots() | self._sync_receive_slots() | self._unpublished
        self._unpublished = False
        if not changed and self.negotiation > 0:
            return
        sdp = await self.transport.create_offer()
        if sdp is None:
            return  # nothing to negotiate yet: the first offer waits for a first m-line
        layered = {
            str(self.publish_slots[k].transceiver.mid)
            for k in self.simulcast_keys() & set(self.publish_slots)
        }
        if layered:
            sdp = offer_simulcast(sdp, layered)
        self.negotiation += 1
        self.awaiting_answer = self.negotiation
        tracks: dict[str, OfferSlot] = {}
        for key, ingress in self.publish_slots.items():
            tracks[str(ingress.transceiver.mid)] = self.publish_slot(key)
        for egress in self.receive_slots.values():
            tracks[str(egress.transceiver.mid)] = egress.info
        await self.offers.offer(self.negotiation, sdp, tracks)

    def _add_publish_slots(self) -> bool:
        changed = False
        for key in sorted(self.wanted_publish() - set(self.publish_slots)):
            kind, codecs = self.publish_codecs(key)
            self.publish_slots[key] = IngressSlot(self.transport.add_ingress(kind, codecs), key)
            changed = True
        return changed

    def _sync_receive_slots(self) -> bool:
        wanted = {track.track_id: (track, info) for track, info in self.wanted_receive()}
        changed = False
        for track_id, (track, info) in wanted.items():
            slot = self.receive_slots.get(track_id)
            if slot is not None and slot.track is not track:  # the same id from a new source (a
                self._retire(self.receive_slots.pop(track_id))  # participant moved relays): re-offer
                slot = None
            if slot is not None:
                slot.info = info
                continue
            self.receive_slots[track_id] = EgressSlot(self.transport.add_egress(track), track, info)
            changed = True
        for track_id in set(self.receive_slots) - set(wanted):
            self._retire(self.receive_slots.pop(track_id))
            changed = True
        return changed

    def _retire(self, slot: EgressSlot) -> None:
        slot.transceiver.direction = "inactive"
        self.transport.stop_sending(slot.subscription)

    async def on_answer(self, negotiation: int, sdp: str) -> None:
        if negotiation != self.awaiting_answer:
            raise ValueError(f"no offer {negotiation} is waiting for an answer")
        answer = await self.transport.apply_answer(sdp)
        self.awaiting_answer = None
        published = self._bind_publish_slots(answer, sdp)
        self._bind_receive_slots()
        if published:
            await self.published([self.track_info(key, track) for key, track in published])
        if self._dirty:
            await self.negotiate()

    def _bind_publish_slots(self, answer: SessionDescription, sdp: str) -> list[tuple[str, PublishedTrack]]:
        published = []
        for key, slot in self.publish_slots.items():
            if slot.track is not None or slot.transceiver.mid is None:
                continue
            media = next((m for m in answer.media if m.rtp.muxId == slot.transceiver.mid), None)
            if media is None or media.direction not in ("sendonly", "sendrecv"):
                continue  # the peer did not attach a track to this m-line (yet)
            track_id, kind = self.published_id(key)
            slot.track = self.transport.receive(slot.transceiver, track_id, kind, media)
            if key in self.simulcast_keys():
                self.transport.receive_layers(slot.transceiver, slot.track, sdp)
            published.append((key, slot.track))
        return published

    def _bind_receive_slots(self) -> None:
        for slot in self.receive_slots.values():
            if slot.subscription is None and slot.transceiver.mid is not None:
                slot.subscription = self.transport.send(slot.transceiver, slot.track)
                if slot.subscription is None:
                    log.warning("codec refused", extra={"track": slot.track.track_id})
                elif slot.subscription.switch is not None:
                    slot.subscription.switch.policy.quality = slot.quality

    def unpublish(self, key: str) -> PublishedTrack | None:
        """Stop receiving what the peer published as ``key`` (its m-line goes inactive)."""
        slot = self.publish_slots.pop(key, None)
        if slot is None:
            return None
        slot.transceiver.direction = "inactive"
        self._unpublished = True
        if slot.track is not None:
            self.transport.stop_receiving(slot.track)
        return slot.track

    async def close(self) -> None:
        self.closed = True
        await self.transport.close()
