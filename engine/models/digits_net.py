"""DigitsNet: the built-in demo model, small enough to train in seconds on a CPU.

It is deliberately shaped to exercise the interesting parts of dependency
analysis: a concat of two branches (index mapping across a cat) and a residual
add (channels coupled across the skip), on 1x8x8 sklearn digits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

INPUT_SHAPE: tuple[int, int, int, int] = (1, 1, 8, 8)
NUM_CLASSES = 10
DEMO_DIR = Path(__file__).resolve().parents[2] / "resources" / "demo"
DEMO_WEIGHTS = DEMO_DIR / "digits_net.pt"


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn plus identity: the add couples input and output channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class DigitsNet(nn.Module):
    """stem -> (1x1 branch || 3x3 branch) -> cat -> residual block -> pool -> Linear."""

    def __init__(self, width: int = 16, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(1, width, 3)
        self.branch_a = _conv_bn_relu(width, width, 1)
        self.branch_b = _conv_bn_relu(width, width, 3)
        self.pool1 = nn.MaxPool2d(2)  # 8x8 -> 4x4
        self.block = ResidualBlock(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        x = self.block(self.pool1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def example_input(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, *INPUT_SHAPE[1:])


def load_demo(weights: Path | str = DEMO_WEIGHTS) -> tuple[DigitsNet, torch.Tensor]:
    """The trained demo model in eval mode and an example input; weights-only load."""
    model = DigitsNet()
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), example_input()
