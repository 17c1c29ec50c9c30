"""A course written inside a test: its rubric and its files (reference, mistakes, fixtures...) in a
folder of its own, as an instructor writes one beside the README."""

from pathlib import Path

import yaml

# A one-layer model whose weights do not depend on torch's random state: a fixture argument for
# function steps that take a model (tests/test_argument_effects.py, tests/test_derived_arguments.py).
TINY_MODEL_FIXTURES = '''
import torch
import torch.nn as nn


class Tiny(nn.Module):
    """A one-layer model whose weights do not depend on torch's random state."""

    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, d)
        generator = torch.Generator().manual_seed(d)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(d, d, generator=generator))
            self.proj.bias.copy_(torch.randn(d, generator=generator))

    def forward(self, x):
        return self.proj(x)
'''


def write_course(folder: Path, rubric: dict, **files: str) -> Path:
    """Write each of `files` (`reference=...` is reference.py) and the rubric as config.yaml in
    `folder`; return the rubric's path."""
    for name, source in files.items():
        (folder / f"{name}.py").write_text(source)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(rubric, sort_keys=False))
    return path
