"""Recently received packets of one stream, by sequence number, to answer NACKs.

A subscriber's NACK names sequence numbers in *its* sequence space; the forwarder maps them back to
the publisher's (``seq_in = seq_out - offset``), looks the original up here and rewrites it again.
The ring is a power of two so the slot is ``seq & mask``, and the sequence number is stored next
to the packet: a slot reused by a newer packet (or never filled) must answer None, never the wrong
packet. Two parallel lists (no per-packet tuple) keep ``put`` to two list stores.
"""

from __future__ import annotations


class PacketHistory:
    """Fixed-size ring of the last ``size`` packets, keyed by sequence number.

    Use one sequence space for ``put`` and ``get`` (the 16-bit RTP sequence number, as NACKs carry
    it, or extended numbers, but not a mix). With 16-bit numbers a lookup cannot confuse a packet
    with one 65536 sequence numbers older, since the slot is overwritten ``65536 / size`` times in
    between (``size`` must be at most 65536).
    """

    __slots__ = ("_data", "_mask", "_seqs")

    def __init__(self, size: int = 1024) -> None:
        if size <= 0 or size & (size - 1) or size > 65536:
            raise ValueError("size must be a power of two in 1..65536")
        self._mask = size - 1
        self._data: list[bytes | None] = [None] * size
        self._seqs: list[int] = [-1] * size

    @property
    def size(self) -> int:
        return self._mask + 1

    def put(self, seq: int, data: bytes) -> None:
        """Remember ``data`` as packet ``seq`` (replacing whatever shared its slot)."""
        i = seq & self._mask
        self._data[i] = data
        self._seqs[i] = seq

    def get(self, seq: int) -> bytes | None:
        """The packet stored as ``seq``, or None if it was never stored or has been overwritten."""
        i = seq & self._mask
        return self._data[i] if self._seqs[i] == seq else None

    def clear(self) -> None:
        """Forget everything (e.g. when the publisher's stream restarts with a new SSRC)."""
        n = self._mask + 1
        self._data = [None] * n
        self._seqs = [-1] * n
