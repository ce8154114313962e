"""The tiny architectures as pytest parameters: those whose processor needs torchvision carry the `torchvision`
mark and are skipped, saying so, where it is not installed (README, "Tests": the second environment runs them)."""

from __future__ import annotations

import pytest

from hf_finedefics.testing import TINY_ARCHITECTURES, TORCHVISION_ARCHITECTURES, has_torchvision

NEEDS_TORCHVISION = [
    pytest.mark.torchvision,
    pytest.mark.skipif(
        not has_torchvision(),
        reason="its processor needs torchvision: run in the torchvision environment (README, 'Tests')",
    ),
]


def architecture_params(architectures: tuple[str, ...] = TINY_ARCHITECTURES) -> list:
    return [
        pytest.param(name, marks=NEEDS_TORCHVISION) if name in TORCHVISION_ARCHITECTURES else name
        for name in architectures
    ]


TINY_ARCHITECTURE_PARAMS = architecture_params()
