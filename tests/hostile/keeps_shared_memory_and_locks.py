# Leave things behind that outlive a process: a SysV shared memory segment, a file in /run/lock and
# in /dev/shm, a FIFO next to the grader's checkout.
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
segment = libc.shmget(int("{SHM_KEY}"), 1 << 20, 0o1000 | 0o666)  # IPC_CREAT
for path in ("/run/lock/{MARKER}", "/dev/shm/{MARKER}", "/var/tmp/{MARKER}"):
    try:
        with open(path, "w") as f:
            f.write("left behind")
    except OSError:
        pass
try:
    os.mkfifo("{REPO_ROOT}/{MARKER}.fifo")
except OSError:
    pass
