# After defining everything, loop forever at the top level.
while True:
    pass
