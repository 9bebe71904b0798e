"""Open what the user asked to publish: a test source, a media file, or a real device.

``testsrc`` is the generated pattern and tone (works headless). A path is a media file (looped). Devices
use FFmpeg's capture formats through aiortc's MediaPlayer: ``v4l2:/dev/video0`` (camera),
``pulse:default`` or ``alsa:default`` (microphone), ``x11:0.0`` (screen). Each needs the hardware and,
for X11, a display; they fail with a clear error where the machine has none.
"""

from __future__ import annotations

from pathlib import Path

from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamTrack

from client_sdk.errors import InvalidRequest
from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack

_DEVICE_FORMATS = {"v4l2": "v4l2", "pulse": "pulse", "alsa": "alsa", "x11": "x11grab"}


def open_source(spec: str, kind: str, screen: bool = False) -> MediaStreamTrack:
    """A track of ``kind`` (audio/video) from ``spec``; raise InvalidRequest when it cannot be opened."""
    if spec == "testsrc":
        if kind == "audio":
            return ToneAudioTrack()
        return PatternVideoTrack(1280, 720, fps=5) if screen else PatternVideoTrack(640, 480)
    device, sep, target = spec.partition(":")
    try:
        if sep and device in _DEVICE_FORMATS:
            target = f":{target}" if device == "x11" else target
            options = {"video_size": "1280x720", "framerate": "15"} if device == "x11" else {}
            player = MediaPlayer(target, format=_DEVICE_FORMATS[device], options=options)
        elif Path(spec).is_file():
            player = MediaPlayer(spec, loop=True)
        else:
            raise InvalidRequest(f"{spec!r} is not testsrc, a file, or a device (v4l2:, pulse:, alsa:, x11:)")
    except (OSError, ValueError) as exc:  # PyAV raises OSError subclasses for missing devices
        raise InvalidRequest(f"cannot open {spec!r}: {exc}", code="media_unavailable") from exc
    track = player.video if kind == "video" else player.audio
    if track is None:
        raise InvalidRequest(f"{spec!r} has no {kind}", code="media_unavailable")
    return track
