"""A meeting's host controls, for its host and co-hosts: ``meeting.host_controls.remove(pid)`` ...

Each is one API call (the API checks the caller's role and tells the relays, which enforce it at once);
a guest gets :class:`~client_sdk.errors.NotAllowed`, an unknown participant
:class:`~client_sdk.errors.ParticipantNotFound`. The effects arrive as meeting events: ``participant_left``
with reason ``removed_by_host``, ``track_muted``, ``role_changed``; the one acted on gets ``ended``
(reason ``removed_by_host``) or ``muted_by_host``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meetup_protocol.schemas.meetings import HostAction, MeetingOut

if TYPE_CHECKING:
    from client_sdk.client import Client


class HostControls:
    def __init__(self, client: Client, meeting_id: str) -> None:
        self.client = client
        self.meeting_id = meeting_id

    async def remove(self, participant_id: str) -> HostAction:
        """Remove a participant for good (it cannot join this meeting again)."""
        return await self.client.remove_participant(self.meeting_id, participant_id)

    async def mute(self, participant_id: str, source: str = "microphone", muted: bool = True) -> HostAction:
        """Mute a participant's ``source``; ``muted=False`` lets it unmute itself again."""
        return await self.client.mute_participant(self.meeting_id, participant_id, source, muted)

    async def mute_all(self) -> HostAction:
        """Mute every guest's microphone (hosts and co-hosts keep theirs)."""
        return await self.client.mute_participant(self.meeting_id, None, "microphone", True)

    async def promote(self, participant_id: str) -> HostAction:
        return await self.client.set_role(self.meeting_id, participant_id, "co_host")

    async def demote(self, participant_id: str) -> HostAction:
        return await self.client.set_role(self.meeting_id, participant_id, "guest")

    async def hand_over(self, participant_id: str) -> HostAction:
        """Make another participant the host (e.g. before leaving); we become a co-host."""
        return await self.client.hand_over(self.meeting_id, participant_id)

    async def admit(self, participant_id: str, admit: bool = True) -> HostAction:
        """Admit (or deny) a guest waiting in the waiting room (``client.waiting`` lists them)."""
        return await self.client.admit(self.meeting_id, participant_id, admit)

    async def lock(self, locked: bool = True) -> MeetingOut:
        return await self.client.lock_meeting(self.meeting_id, locked)
