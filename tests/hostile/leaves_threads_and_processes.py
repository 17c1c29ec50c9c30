# Start a thread and child processes that keep running after the grader is done.
import subprocess
import threading
import time


def spin():
    while True:
        time.sleep(0.1)


threading.Thread(target=spin, daemon=False).start()
subprocess.Popen(["sleep", "{MARKER}"], start_new_session=True)
subprocess.Popen(["sleep", "{MARKER}"])
