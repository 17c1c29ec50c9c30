"""Known chapter-4 mistakes, each an alternative implementation of the steps it affects.

Each variant is the reference class of ``gpt.py`` with exactly one thing changed, marked
``# MISTAKE: ...``; it keeps the reference's signature, parameter names and creation order, so the
grader can compare it with a student's module on the same weights.
"""

import importlib.util
import pathlib
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn


def _load_reference():
    name = "_chapter4_reference"
    if name not in sys.modules:
        path = pathlib.Path(__file__).resolve().with_name("gpt.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


ref = _load_reference()


@dataclass(frozen=True)
class Mistake:
    id: str
    title: str
    explanation: str
    hint: str
    implementations: dict


class LayerNormUnbiased(ref.LayerNorm):
    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True)  # MISTAKE: the unbiased variance (divided by n - 1)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELUErf(ref.GELU):
    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))  # MISTAKE: the exact GELU, not GPT-2's tanh form


def _feed_forward_with(activation):
    class FeedForwardVariant(ref.FeedForward):
        def __init__(self, cfg):
            nn.Module.__init__(self)
            self.layers = nn.Sequential(
                nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
                activation(),
                nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
            )

    return FeedForwardVariant


class BlockWithoutShortcut(ref.TransformerBlock):
    def forward(self, x):
        x = self.drop_shortcut(self.att(self.norm1(x)))  # MISTAKE: no shortcut (x + shortcut)
        return self.drop_shortcut(self.ff(self.norm2(x)))


class BlockWithoutFirstShortcut(ref.TransformerBlock):
    def forward(self, x):
        x = self.drop_shortcut(self.att(self.norm1(x)))  # MISTAKE: no shortcut around the attention
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class BlockWithoutSecondShortcut(ref.TransformerBlock):
    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return self.drop_shortcut(self.ff(self.norm2(x)))  # MISTAKE: no shortcut around the ff


class BlockPostNorm(ref.TransformerBlock):
    def forward(self, x):
        x = self.norm1(x + self.drop_shortcut(self.att(x)))  # MISTAKE: the norm after the shortcut
        return self.norm2(x + self.drop_shortcut(self.ff(x)))


class GPTWithoutPositions(ref.GPTModel):
    def forward(self, in_idx):
        x = self.drop_emb(self.tok_emb(in_idx))  # MISTAKE: no positional embedding
        return self.out_head(self.final_norm(self.trf_blocks(x)))


def _generate_without_cropping(model, idx, max_new_tokens, context_size):
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx)  # MISTAKE: the whole sequence, not the last context_size tokens
        idx = torch.cat((idx, torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)), dim=1)
    return idx


def _generate_from_first_position(model, idx, max_new_tokens, context_size):
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])
        idx = torch.cat((idx, torch.argmax(logits[:, 0, :], dim=-1, keepdim=True)), dim=1)  # MISTAKE
    return idx


def _count_untied(model):
    return sum(p.numel() for p in model.parameters())  # MISTAKE: the tied output head counted too


MISTAKES = {
    "layernorm_unbiased_variance": Mistake(
        "layernorm_unbiased_variance",
        "The unbiased variance in LayerNorm",
        "x.var() divides by n - 1 by default; GPT-2's layer norm divides by n, so every output is "
        "scaled by sqrt((n - 1) / n).",
        "Use x.var(dim=-1, keepdim=True, unbiased=False).",
        {"LayerNorm": (LayerNormUnbiased,)}),
    "gelu_exact_erf": Mistake(
        "gelu_exact_erf",
        "The exact GELU instead of GPT-2's tanh approximation",
        "0.5 * x * (1 + erf(x / sqrt(2))) is the exact GELU; GPT-2 and the book use the tanh "
        "approximation, which differs by up to about 0.001.",
        "Use 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x ** 3))), your own GELU class "
        "(or nn.GELU(approximate=\"tanh\")), also between the feed-forward network's linear layers.",
        {"GELU": (GELUErf,),
         # nn.GELU() is the exact form too: a FeedForward built with it, or with an exact GELU class
         "FeedForward": (_feed_forward_with(nn.GELU), _feed_forward_with(GELUErf))}),
    "feedforward_relu": Mistake(
        "feedforward_relu",
        "ReLU in the feed-forward network",
        "The feed-forward network applies GELU between its two linear layers; ReLU zeroes every "
        "negative value instead of letting small ones through.",
        "Put GELU() between the two nn.Linear layers.",
        {"FeedForward": (_feed_forward_with(nn.ReLU),)}),
    "block_missing_shortcut": Mistake(
        "block_missing_shortcut",
        "A missing shortcut connection",
        "Each half of the block adds its input back (x = x + shortcut); without it the block's "
        "output forgets its input and gradients vanish in deep models.",
        "Keep shortcut = x before each half and return x + shortcut after it.",
        {"TransformerBlock": (BlockWithoutShortcut, BlockWithoutFirstShortcut,
                              BlockWithoutSecondShortcut)}),
    "block_post_norm": Mistake(
        "block_post_norm",
        "Layer norm after the shortcut (post-norm)",
        "GPT-2 normalises the input of each half (pre-norm): norm1 before the attention and norm2 "
        "before the feed-forward network, not after adding the shortcut.",
        "x = x + drop(att(norm1(x))), then x = x + drop(ff(norm2(x))).",
        {"TransformerBlock": (BlockPostNorm,)}),
    "gpt_no_positional_embedding": Mistake(
        "gpt_no_positional_embedding",
        "No positional embedding",
        "Without pos_emb every position of the same token starts from the same vector: the model "
        "cannot tell the order of the tokens apart.",
        "Add self.pos_emb(torch.arange(seq_len, device=in_idx.device)) to the token embeddings.",
        {"GPTModel": (GPTWithoutPositions,)}),
    "tying_counted_wrong": Mistake(
        "tying_counted_wrong",
        "The tied output head is counted",
        "GPT-2 reuses the token embedding's weights in its output head, so the book counts the "
        "parameters without out_head: 124,412,160, not 163,009,536.",
        "Subtract sum(p.numel() for p in model.out_head.parameters()) from the total.",
        {"count_parameters_tied": (_count_untied,)}),
    "generate_without_cropping": Mistake(
        "generate_without_cropping",
        "The context is not cropped",
        "Once the text is longer than the model's context, the model is given more tokens than its "
        "positional embedding holds.",
        "idx_cond = idx[:, -context_size:] before each call of the model.",
        {"generate_text_simple": (_generate_without_cropping,)}),
    "generate_from_first_position": Mistake(
        "generate_from_first_position",
        "The next token is read from the first position",
        "logits[:, 0, :] predicts the token after the first one; the next token comes from the "
        "last position, logits[:, -1, :].",
        "Use logits[:, -1, :].",
        {"generate_text_simple": (_generate_from_first_position,)}),
}
