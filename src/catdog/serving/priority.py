"""CPU priority for the service's heavy threads, so the event loop answers first.

Decoding and the model run in threads; under overload they keep every core busy, and the event
loop, which accepts connections and answers the immediate 503s, waits its turn behind them. On
Linux a thread has its own nice value: the heavy threads run at a lower priority, the loop keeps
the normal one, and a refusal no longer queues behind inference. Threads that ONNX Runtime starts
inherit the priority of the thread that creates the session, so models are loaded in a lowered
thread too. Raising a nice value needs no privilege; elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import os
import sys
import threading

# CFS weight of nice 10 is about a tenth of nice 0: the loop wins the core when it needs it, and
# the heavy threads still get all of it when the loop idles.
BACKGROUND_NICE = 10


def lower_this_thread(step: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's priority by `step` (capped at nice 19); use as an initializer."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + step))
    except OSError:  # a sandbox that forbids it: run at normal priority
        return
