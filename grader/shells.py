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
    """Returns the next of the outputs it was given; counts its calls.

    Given the inputs the reference's submodule got (`inputs`) and a fixed matrix (`jacobian`, (in
    features, out features)), it answers recorded output + (x - recorded input) @ jacobian: exactly
    the recorded output where the code before it is right, and an output that differs, in a way the
    grader predicts from the reference alone, where it is not. A stand-in so never hides a mistake
    upstream of it, and gradients still reach the weights before it."""

    def __init__(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor] | None = None,
                 jacobian: torch.Tensor | None = None):
        super().__init__()
        self.outputs = list(outputs)
        self.inputs = list(inputs) if inputs is not None else None
        self.jacobian = jacobian
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = min(self.calls, len(self.outputs) - 1)
        self.calls += 1
        output = self.outputs[index].clone()
        if self.inputs is None or self.jacobian is None:
            return output  # the input is ignored (a wrapper's heads all get the wrapper's input)
        recorded = self.inputs[index]
        if not isinstance(x, torch.Tensor) or x.shape != recorded.shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the grader's stand-in for this submodule was given an input of shape "
                             f"{got}; the reference gives it {tuple(recorded.shape)}")
        return output + (x - recorded) @ self.jacobian


def install(module: nn.Module, paths: list[str], payloads: list[dict]) -> None:
    """Install the stand-ins for one input: at each path, `{"each": [...]}` replaces every module of
    an nn.ModuleList by a Replay of one output (the wrapper's heads); `{"calls": [...]}` replaces the
    submodule itself by a Replay of its outputs, in call order (a block's `att`, a model's blocks)."""
    for path, payload in zip(paths, payloads):
        if "each" in payload:
            install_replays(module, path, payload["each"])
            continue
        parent_path, _, name = path.rpartition(".")
        try:
            parent = module.get_submodule(parent_path) if parent_path else module
            present = name in parent._modules
        except AttributeError:
            present = False
        if not present:
            raise TypeError(f"the grader stands in for your `{path}` to grade this module on its "
                            f"own, so it must be a submodule called `{path}`; yours has none")
        parent._modules[name] = Replay(payload["calls"], payload.get("inputs"),
                                       payload.get("jacobian"))


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
