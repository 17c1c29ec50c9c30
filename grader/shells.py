"""Stand-in modules that both the grader and the worker build: shells and replays.

Neither holds any solution code. A *shell* is a module with only the parameters the contract names
(a SelfAttention_v2 shell has W_query/W_key/W_value as nn.Linear and nothing else), so a step that
takes modules as arguments (transfer_weights_v2_to_v1) is graded without the student's own classes.
A *replay* stands in for a submodule with a linear answer the grader chose, so a step that
combines submodules (MultiHeadAttentionWrapper's heads, a block's norms and feed-forward network)
is graded without the student's own submodules; it holds nothing that gives back what the
reference computed (see Replay).
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
    """Stands in for a submodule: answers `offset + x @ jacobian`, one offset per call (the last
    one again for any later call), and counts its calls.

    The grader chooses `jacobian` (in features, out features) and computes each offset from the
    reference's recorded call as recorded output - recorded input @ jacobian (grader.cases, before
    anything is sent), so the answer is exactly the reference's output where the code before the
    stand-in is right, and differs, in a way the grader predicts from the reference alone, where it
    is not; gradients still reach the weights before it.

    Everything here is readable by the student's code in the worker (attributes, closures,
    gc.get_objects()), so a Replay holds nothing the reference computed in a form that gives it
    back: not the recorded input (a composite that fed it on would skip the work before the
    stand-in), not the recorded output. An offset is one equation in both of them, so neither can
    be recovered from it; x @ jacobian + offset is what calling the stand-in gives anyway.

    A wrapper's heads are stood in for the same way, each with its own jacobian. They used to
    answer their recorded output whatever they were given. That output alone reproduces nothing
    the wrapper must compute (it is what calling the head gives; the wrapper's work is giving each
    head its input and concatenating the answers), but a head that ignores its input cannot show
    that the wrapper gave it one: a wrapper that concatenated what its heads held, or what they
    gave on zeros, earned `values`. A linear head gives the reference's output only on the
    wrapper's input.

    Without a jacobian (the reference's input was not a floating-point tensor with the output's
    leading dimensions, so no linear answer fits) the offset is the recorded output itself and
    the input is ignored: holding it gives nothing that calling the stand-in does not, but nothing
    before such a stand-in is checked through it."""

    def __init__(self, offsets: list[torch.Tensor], jacobian: torch.Tensor | None = None,
                 where: str = "submodule"):
        super().__init__()
        self.offsets = list(offsets)
        self.jacobian = jacobian
        self.calls = 0
        self.where = where  # the student's name for what it replaces, for messages

    def __getattr__(self, name: str):
        """What nn.Module holds, or an error that says what the student's code may do with it."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("__") or name == "where":
                raise
        raise AttributeError(self.only_called(f"has no `{name}`"))

    def only_called(self, problem: str) -> str:
        """What the student reads when their code uses this module other than by calling it."""
        return (f"to grade this step on its own code, the grader put its own module in place of "
                f"your `{self.where}`, and that module {problem}: only call it, as in "
                f"self.{self.where}(x), and read nothing else of it in this step's forward")

    def __getitem__(self, index):
        raise TypeError(self.only_called("cannot be indexed"))

    def __iter__(self):
        raise TypeError(self.only_called("cannot be iterated over"))

    def __repr__(self) -> str:
        return f"<the grader's module in place of your `{self.where}`>"

    def forward(self, x: torch.Tensor, **_options) -> torch.Tensor:
        """The answer for x; keyword options (a KV-cache block's use_cache=) change nothing."""
        index = min(self.calls, len(self.offsets) - 1)
        self.calls += 1
        offset = self.offsets[index].clone()
        if self.jacobian is None:
            return offset
        expected = (*offset.shape[:-1], self.jacobian.shape[0])
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the grader's module in place of your `{self.where}` was given an "
                             f"input of shape {got}; the reference gives it {expected}")
        return offset + x @ self.jacobian


# what a student's code sees of the class, in an error or a type(): no module or class of ours
Replay.__module__, Replay.__name__, Replay.__qualname__ = "grading", "StandIn", "StandIn"


def replay(payload: dict, where: str = "submodule") -> Replay:
    """The stand-in a payload describes: {"calls": [offset, ...], "jacobian": J} (or no jacobian),
    in place of the student's submodule `where`."""
    return Replay(payload["calls"], payload.get("jacobian"), where)


def install(module: nn.Module, paths: list[str], payloads: list[dict]) -> None:
    """Install the stand-ins for one input: at each path, `{"each": [payload, ...]}` replaces every
    module of a container (an nn.ModuleList or nn.Sequential: a wrapper's heads, a model's blocks)
    by the Replay of its own payload, in place, so the container stays the student's own (iterated,
    indexed, counted or called as their code does); `{"calls": [...], "jacobian": J}` replaces the
    submodule itself by one Replay of its calls, in call order (a block's `norm1`)."""
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
        parent._modules[name] = replay(payload, path)


def install_replays(module: nn.Module, path: str, payloads: list[dict]) -> None:
    """Replace each module of the container at `path` by the Replay of its payload."""
    try:
        container = module.get_submodule(path)
    except AttributeError:
        container = getattr(module, path, None)
    if not isinstance(container, (nn.ModuleList, nn.Sequential)):
        found = "missing" if container is None else f"a {type(container).__name__}"
        raise TypeError(f"the grader stands in for each of your `{path}` to grade this module on "
                        f"its own, so `{path}` must be an nn.ModuleList of the modules it holds "
                        f"(one per head or block; an nn.Sequential will do too); yours is {found}")
    if len(container) != len(payloads):
        raise ValueError(f"`{path}` holds {len(container)} modules; the grader expected "
                         f"{len(payloads)}, as many as the reference's (one per head or block)")
    for index, payload in enumerate(payloads):
        container[index] = replay(payload, f"{path}[{index}]")
