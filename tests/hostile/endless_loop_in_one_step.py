def softmax_naive(x):
    while True:
        pass
