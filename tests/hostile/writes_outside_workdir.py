# Write outside the working directory: next to the test's files, and in the shared /tmp.
for path in ("{OUTSIDE}", "/tmp/{MARKER}"):
    try:
        with open(path, "w") as f:
            f.write("escaped")
    except OSError:
        pass
