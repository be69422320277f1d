"""What the Triton model logged about a request's streams (its own record, read from the server's log)."""

from __future__ import annotations

import re
import time

from tests.stack import Stack


def cancelled_chunks(stack: Stack, request_id: str, deadline_s: float) -> int:
    """The most chunks one of the request's Triton streams sent before it saw the cancellation.

    From the model's own log lines: the sentence that was speaking logs its count; the next one's
    TTS, started after the first audio, may be cancelled too and logs its own (often 0).
    """
    pattern = re.compile(rf"\[{re.escape(request_id)}-\d+\] cancelled after (\d+) chunks")
    deadline = time.monotonic() + deadline_s
    while not (counts := [int(count) for count in pattern.findall(stack.triton.log_text(None))]) or max(counts) < 1:
        if time.monotonic() > deadline:
            return max(counts, default=-1)
        time.sleep(0.2)  # polling the server's log for the model's own record, not a fixed wait
    return max(counts)
