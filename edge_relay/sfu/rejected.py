"""Answers that reject an m-line, made applicable by aiortc.

The relay makes every offer, and offers a subscriber each track in its publisher's codec only (it never
transcodes). A browser that cannot decode that codec rejects the m-line in its answer (JSEP: port 0).
Firefox ESR, with no OpenH264 plugin (downloaded at run time; offline, or not allowed), rejects an
H.264 m-line like this, with neither ICE nor DTLS attributes and a codec it does have::

    m=video 0 UDP/TLS/RTP/SAVPF 120
    c=IN IP4 0.0.0.0
    a=inactive
    a=mid:4
    a=rtpmap:120 VP8/90000

aiortc 1.16.0 refuses the whole answer then (``ValueError``: no ICE credentials on that m-line, or
``OperationError``: no codec in common with what it offered), so one participant's H.264 camera would
leave a Firefox subscriber without every other track negotiated in the same answer. aiortc has no notion
of a rejected (stopped) transceiver, so :func:`accept_rejected` rewrites each rejected m-line into an
``inactive`` one it can apply: the offer's own codecs on it, the bundle's ICE and DTLS attributes, and
reports the MIDs so that nothing is forwarded on them (the transport never subscribes them).
"""

from __future__ import annotations

#: Attributes every m-line of an answer must carry for aiortc (taken from the bundle's first live one).
_TRANSPORT = ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:")
#: What the offer said of an m-line's codecs, kept on the rewritten one.
_CODECS = ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")


class RejectedEverything(ValueError):
    """The answer rejected every m-line: there is nothing to connect."""


def _sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """(session lines, one list of lines per m-line)."""
    session: list[str] = []
    media: list[list[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def _rejected(section: list[str]) -> bool:
    fields = section[0].split()
    return len(fields) > 1 and fields[1] == "0"


def _mid(section: list[str]) -> str | None:
    return next((line[len("a=mid:") :] for line in section if line.startswith("a=mid:")), None)


def accept_rejected(answer: str, offer: str) -> tuple[str, set[str]]:
    """(an answer aiortc can apply, the MIDs of the m-lines it rejected). Unchanged when none is.

    m-lines pair up by position (an answer has the offer's m-lines, in order); a rejected one without a
    ``a=mid`` gets the offer's MID."""
    session, media = _sections(answer)
    if not any(_rejected(section) for section in media):
        return answer, set()
    live = next((section for section in media if not _rejected(section)), None)
    if live is None:
        raise RejectedEverything("the answer rejected every m-line")
    _, offered = _sections(offer)
    if len(offered) != len(media):
        raise ValueError(f"the answer has {len(media)} m-lines, the offer {len(offered)}")
    # The live m-line's own ICE and DTLS attributes; the session's where it has none (Firefox puts the
    # fingerprint at session level).
    own = [line for line in live if line.startswith(_TRANSPORT)]
    transport = own + [
        line
        for line in session
        if line.startswith(_TRANSPORT) and not any(o.startswith(line[:8]) for o in own)
    ]
    rejected: set[str] = set()
    for index, section in enumerate(media):
        if not _rejected(section):
            continue
        ours = offered[index]
        mid = _mid(section) or _mid(ours)
        if mid is None:
            raise ValueError(f"m-line {index} has no mid")
        kind, _, proto, *formats = ours[0].split()
        media[index] = [
            " ".join([kind, "0", proto, *formats]),
            "c=IN IP4 0.0.0.0",
            "a=inactive",
            f"a=mid:{mid}",
            *transport,
            "a=rtcp-mux",
            *(line for line in ours if line.startswith(_CODECS)),
        ]
        rejected.add(mid)
    lines = [*session, *(line for section in media for line in section)]
    return "\r\n".join(lines) + "\r\n", rejected
