"""The embedded default itself: moto serialised like DynamoDB's atomic writes, start and stop."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from local_stack.moto_serial import Serialized


def test_requests_to_moto_never_overlap() -> None:
    active, peak = 0, 0
    guard = threading.Lock()

    def app(environ, start_response):
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with guard:
            active -= 1
        start_response("200 OK", [])
        return [b"ok"]

    serialized = Serialized(app)
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: serialized({}, lambda *a: None), range(32)))
    assert bodies == [[b"ok"]] * 32 and peak == 1
