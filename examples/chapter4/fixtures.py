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


class GPTParameters(nn.Module):
    """The parameters of a GPT of configuration `cfg`, named as GPTModel names them, built on the
    meta device (shapes only, no memory, even for GPT-2's 163 million); it has no forward."""

    def __init__(self, cfg):
        super().__init__()
        emb, vocab = cfg["emb_dim"], cfg["vocab_size"]
        with torch.device("meta"):
            self.tok_emb = nn.Embedding(vocab, emb)
            self.pos_emb = nn.Embedding(cfg["context_length"], emb)
            self.trf_blocks = nn.Sequential(*[self._block(cfg) for _ in range(cfg["n_layers"])])
            self.final_norm = self._norm(emb)
            self.out_head = nn.Linear(emb, vocab, bias=False)

    @staticmethod
    def _norm(emb):
        norm = nn.Module()
        norm.scale, norm.shift = nn.Parameter(torch.ones(emb)), nn.Parameter(torch.zeros(emb))
        return norm

    def _block(self, cfg):
        emb, bias = cfg["emb_dim"], cfg["qkv_bias"]
        block, att, ff = nn.Module(), nn.Module(), nn.Module()
        att.W_query, att.W_key, att.W_value = (nn.Linear(emb, emb, bias=bias) for _ in range(3))
        att.out_proj = nn.Linear(emb, emb)
        ff.layers = nn.Sequential(nn.Linear(emb, 4 * emb), nn.Identity(), nn.Linear(4 * emb, emb))
        block.att, block.ff = att, ff
        block.norm1, block.norm2 = self._norm(emb), self._norm(emb)
        return block
