"""Course fixtures: stand-ins built in the grader's process and, from this same source, in the
worker (see `{fixture: fixtures.py:CLASS}` in config.yaml). They hold no solution code."""

import torch
import torch.nn as nn


class TinyLanguageModel(nn.Module):
    """A fixed language model: (b, T) token ids -> (b, T, vocab_size) logits, where each position's
    logits depend on every token up to it, and an input longer than `context_length` is refused as
    GPTModel's positional embedding refuses it."""

    def __init__(self, vocab_size, context_length, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.context_length = context_length
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size, generator=generator),
                                  requires_grad=False)
        self.position = nn.Parameter(torch.randn(context_length, vocab_size, generator=generator),
                                     requires_grad=False)

    def forward(self, idx):
        tokens = idx.shape[1]
        if tokens > self.context_length:
            raise IndexError(f"{tokens} tokens, but the context holds {self.context_length}: "
                             "crop the input to the last context_size tokens")
        logits = self.table[idx] + self.position[:tokens]  # (b, T, vocab_size)
        return logits.cumsum(dim=1)  # each position sees the tokens up to it
