# Placed before the last steps' definitions by the test: exit "successfully" half-way through.
import sys

sys.exit(0)
