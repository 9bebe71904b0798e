"""The relay's signalling protocol, version 1: JSON text frames over one WebSocket per participant.

Shared by the relay and every client (the Python SDK imports this package; the browser client follows it,
checked by tests/meetup_protocol/test_browser_protocol.py). One module per direction: ``client``
(client -> relay, and the parser of what a peer sends), ``relay`` (relay -> client), ``cascade``
(relay <-> relay), with the values they carry in ``types`` and the JSON limits in ``json_text``; all
re-exported here.

The relay always makes the offers, so there is never glare: a client asks to publish, the relay answers
with an offer that holds a ``recvonly`` m-line for it (``tracks[mid].publish``) plus one ``sendonly``
m-line per remote track; the client attaches its track to that m-line and answers.

Client -> relay
    join        {token, protocol, publish, video_codec, simulcast}   first message, exactly once
    publish     {source, video_codec, simulcast}   camera | microphone | screen; VP8 or H.264;
                                             simulcast: send the camera as layers if offered (VP8)
    video_quality {track_id, quality}        low | medium | high: the best layer wanted of that track
    unpublish   {source}
    answer      {negotiation, sdp}           to the relay's offer with that number
    mute        {source, muted}
    reaction    {notice}                     the API's signed notice of the stored reaction; fanned out
    chat        {notice}                     the API's signed notice of the stored message; fanned out
    hand        {raised, participant_id?}    raise/lower one's hand; hosts and co-hosts lower others'
    end         {}                           host only: the meeting ends for everyone
    leave       {}
    ping        {}

Relay <-> relay (cascade; the joining relay is the client, the other makes the offers)
    cascade_join   {token, state}    state: LinkState, this relay's participants and tracks (with codecs)
    cascade_update {state}           either way, whenever a side's own participants or tracks change
    relayed        {event}           either way: chat, reaction, track_muted, meeting_ended of its people,
                                     participant_left (why one of them left, e.g. removed_by_host)
    offer tracks: mid -> {publish_track: track_id} for the joining relay's tracks

Relay -> client
    welcome     {participant_id, meeting_id, role, participants}
    offer       {negotiation, sdp, tracks}   tracks: mid -> TrackInfo (remote) or {publish: source}
    participant_joined {participant} / participant_left {participant_id, reason}
    track_published {track} / track_unpublished {track_id} / track_muted {track_id, muted}
    reaction    {participant_id, name, emoji} / chat {participant_id, name, message_id, text, created_at}
    meeting_ended {reason}                   then the relay closes the connection
    removed     {reason}                     this participant left (through the API): do not reconnect
    chat_ack    {message_id}                 the relay has this participant's chat notice: no resend
    role_changed {participant_id, role}      host | co_host | guest (a host promoted, demoted, handed over)
    muted_by_host {source, muted, can_unmute} to the muted participant: the relay forwards none of it
    hand_changed {participant_id, raised, raised_at, by}  hands in raise order (raised_at)
    error       {code, message}              a bad message is answered and otherwise ignored
    pong        {}
"""

from meetup_protocol.signalling.cascade import (
    CascadeJoin,
    CascadeUpdate,
    LinkAnswer,
    LinkError,
    LinkOffer,
    LinkState,
    LinkTrack,
    PublishTrackSlot,
    Relayed,
    parse_link_message,
)
from meetup_protocol.signalling.cascade import encode as encode_cascade
from meetup_protocol.signalling.client import (
    Answer,
    Chat,
    ClientMessage,
    End,
    Hand,
    Join,
    Leave,
    Mute,
    Ping,
    Publish,
    Reaction,
    SetVideoQuality,
    Unpublish,
    parse_client_message,
)
from meetup_protocol.signalling.json_text import (
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    ProtocolError,
    load_json,
    too_deep,
)
from meetup_protocol.signalling.relay import (
    RELAY_MESSAGES,
    ChatAck,
    ChatEvent,
    Error,
    HandChanged,
    MeetingEnded,
    Migrate,
    MutedByHost,
    Offer,
    ParticipantJoined,
    ParticipantLeft,
    Pong,
    ReactionEvent,
    RelayMessage,
    Removed,
    RoleChanged,
    ServerMessage,
    SpeakerLevel,
    SpeakersChanged,
    TrackMuted,
    TrackPublished,
    TrackUnpublished,
    Welcome,
    message,
    parse_relay_message,
)
from meetup_protocol.signalling.types import (
    PROTOCOL_VERSION,
    SOURCE_KIND,
    CodecInfo,
    Kind,
    Message,
    Notice,
    ParticipantInfo,
    PublishSlot,
    Sdp,
    Source,
    TrackInfo,
    VideoCodec,
    VideoQuality,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING",
    "PROTOCOL_VERSION",
    "RELAY_MESSAGES",
    "SOURCE_KIND",
    "Answer",
    "CascadeJoin",
    "CascadeUpdate",
    "Chat",
    "ChatAck",
    "ChatEvent",
    "ClientMessage",
    "CodecInfo",
    "End",
    "Error",
    "Hand",
    "HandChanged",
    "Join",
    "Kind",
    "Leave",
    "LinkAnswer",
    "LinkError",
    "LinkOffer",
    "LinkState",
    "LinkTrack",
    "MeetingEnded",
    "Message",
    "Migrate",
    "Mute",
    "MutedByHost",
    "Notice",
    "Offer",
    "ParticipantInfo",
    "ParticipantJoined",
    "ParticipantLeft",
    "Ping",
    "Pong",
    "ProtocolError",
    "Publish",
    "PublishSlot",
    "PublishTrackSlot",
    "Reaction",
    "ReactionEvent",
    "RelayMessage",
    "Relayed",
    "Removed",
    "RoleChanged",
    "Sdp",
    "ServerMessage",
    "SetVideoQuality",
    "Source",
    "SpeakerLevel",
    "SpeakersChanged",
    "TrackInfo",
    "TrackMuted",
    "TrackPublished",
    "TrackUnpublished",
    "Unpublish",
    "VideoCodec",
    "VideoQuality",
    "Welcome",
    "encode_cascade",
    "load_json",
    "message",
    "parse_client_message",
    "parse_link_message",
    "parse_relay_message",
    "too_deep",
]
