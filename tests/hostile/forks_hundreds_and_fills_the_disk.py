# Start as many processes as it can, each in a session of its own and waiting for ever, and write
# until the disk is full.
import os

for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break  # the process limit
    if pid == 0:
        try:
            os.setsid()
            os.execv("/bin/sleep", ["sleep", "{MARKER}"])
        finally:
            os._exit(0)

chunk = b"x" * (1 << 20)
for index in range(256):  # up to 4 GB, in files no larger than the file-size limit allows
    try:
        with open(f"filler{index}", "wb") as f:
            for _ in range(16):
                f.write(chunk)
    except OSError as exc:
        if exc.errno != 27:  # EFBIG: the next file; anything else (ENOSPC): the disk is full
            break
