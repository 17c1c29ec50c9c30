# Try to hand in the reference solution instead of one's own.
import importlib.util
import sys

sys.path.insert(0, "{REPO_ROOT}")
try:
    from solutions.attention import softmax_naive  # noqa: F401
except ImportError:
    try:
        spec = importlib.util.spec_from_file_location("s", "{REPO_ROOT}/solutions/attention.py")
        reference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reference)
        softmax_naive = reference.softmax_naive
    except (ImportError, OSError):

        def softmax_naive(x):
            raise RuntimeError("the reference solutions were out of reach")
