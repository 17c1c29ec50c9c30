import sys
from pathlib import Path

# Make `solutions`, `exercises` and `grader` importable however pytest is started.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
