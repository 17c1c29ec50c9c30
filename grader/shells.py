"""Stand-in modules that both the grader and the worker build: shells and replays.

Neither holds any solution code. A *shell* is a module with only the parameters the contract names
(a SelfAttention_v2 shell has W_query/W_key/W_value as nn.Linear and nothing else), so a step that
takes modules as arguments (transfer_weights_v2_to_v1) is graded without the student's own classes.
A *replay* stands in for a submodule and returns outputs the grader chose, so a step that combines
submodules (MultiHeadAttentionWrapper's heads) is graded without the student's CausalAttention.
Loaded by file path in the worker, so it imports only torch.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def build_shell(class_name: str, layout: dict) -> nn.Module:
    """A module named `class_name` with the parameters in `layout`, already holding their values.

    layout maps an attribute name to {"linear": {"weight": W, "bias": b or None}} or
    {"parameter": tensor}.
    """
    shell = type(class_name, (nn.Module,), {"__doc__": "A shell: parameters only."})()
    for name, spec in layout.items():
        if "linear" in spec:
            weight, bias = spec["linear"]["weight"], spec["linear"].get("bias")
            d_out, d_in = weight.shape
            layer = nn.Linear(d_in, d_out, bias=bias is not None)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if bias is not None:
                    layer.bias.copy_(bias)
            setattr(shell, name, layer)
        else:
            setattr(shell, name, nn.Parameter(spec["parameter"].clone()))
    return shell


class Replay(nn.Module):
    """Returns the next of the outputs it was given, whatever its input; counts its calls."""

    def __init__(self, outputs: list[torch.Tensor]):
        super().__init__()
        self.outputs = list(outputs)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG002 - the input is ignored
        output = self.outputs[min(self.calls, len(self.outputs) - 1)]
        self.calls += 1
        return output.clone()


def install_replays(module: nn.Module, path: str, outputs: list[torch.Tensor]) -> None:
    """Replace each module of the nn.ModuleList at `path` by a Replay of one output."""
    try:
        container = module.get_submodule(path)
    except AttributeError:
        container = getattr(module, path, None)
    if not isinstance(container, nn.ModuleList):
        found = "missing" if container is None else f"a {type(container).__name__}"
        raise TypeError(f"the grader stands in for each of your `{path}` to grade this module on "
                        f"its own, so `{path}` must be an nn.ModuleList of the head modules; "
                        f"yours is {found}")
    if len(container) != len(outputs):
        raise ValueError(f"`{path}` holds {len(container)} modules; the grader expected "
                         f"{len(outputs)}, one per head (num_heads)")
    for index, output in enumerate(outputs):
        container[index] = Replay([output])
