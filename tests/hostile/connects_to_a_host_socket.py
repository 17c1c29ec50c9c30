# Connect to a Unix socket of the host (a pathname socket is reachable from any network namespace),
# or to an abstract one, and send something.
import socket


def _reached():
    for address in ("{SOCKET}", "\0attention-grader-test-{MARKER}"):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(address)
                s.sendall(b"escaped")
                return True
        except OSError:
            pass
    return False


def softmax_naive(x):
    import torch

    if _reached():
        raise RuntimeError("reached a socket of the host")
    exp_x = torch.exp(x)
    return exp_x / exp_x.sum(dim=0)
