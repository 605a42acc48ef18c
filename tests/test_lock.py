import os
import signal
import subprocess
import sys

import pytest

from bodisc.errors import StoreError
from bodisc.lock import CampaignLock

HOLD = """
import sys, time
from bodisc.lock import CampaignLock
lock = CampaignLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    store = tmp_path / "store.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(store)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StoreError) as info:
            CampaignLock(store).acquire()
        msg = str(info.value)
        assert f"pid {proc.pid} on " in msg and "already running" in msg and "started " in msg
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the holder died without releasing: its lock is taken over, and remembered
    lock = CampaignLock(store).acquire()
    assert lock.previous["pid"] == proc.pid
    lock.release()


def test_lock_is_reentrant_after_release(tmp_path):
    store = tmp_path / "s.sqlite"
    with CampaignLock(store) as lock:
        assert lock.previous is None
    with CampaignLock(store) as lock:
        assert lock.previous is None  # released cleanly: nothing to take over
    assert os.path.exists(str(store) + ".lock")
