"""Train the DigitsNet demo model on sklearn's 8x8 digits and write its artifacts.

Run from the repo root: `python resources/demo/train_digits.py`. Deterministic
(fixed seeds, one thread); writes digits_net.pt (a state dict, loadable with
weights_only=True), digits_net.json (metrics) and digits_heldout.npz / digits_train.npz (the two
slices, so evaluation, recovery and scans run later without sklearn).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from engine.models.digits_net import DEMO_DIR, DigitsNet  # noqa: E402

SEED = 0
EPOCHS = 40
BATCH = 64


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]  # N,1,8,8 in [0, 1]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, stratify=y, random_state=SEED)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    x_tr, x_te, y_tr, y_te = load_data()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    xe, ye = torch.from_numpy(x_te), torch.from_numpy(y_te)
    model = DigitsNet()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    gen = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(BATCH):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
        if epoch % 10 == 9:
            print(
                f"epoch {epoch + 1}: loss {loss.item():.4f} test acc {accuracy(model, xe, ye):.4f}"
            )
    seconds = time.perf_counter() - start
    model.eval()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), DEMO_DIR / "digits_net.pt")
    np.savez_compressed(DEMO_DIR / "digits_heldout.npz", x=x_te, y=y_te)
    np.savez_compressed(DEMO_DIR / "digits_train.npz", x=x_tr, y=y_tr)
    meta = {
        "model": "engine.models.digits_net.DigitsNet",
        "input_shape": [1, 1, 8, 8],
        "classes": 10,
        "dataset": "sklearn.datasets.load_digits",
        "split": {"train": len(x_tr), "heldout": len(x_te), "stratified": True, "seed": SEED},
        "epochs": EPOCHS,
        "train_accuracy": round(accuracy(model, xt, yt), 4),
        "test_accuracy": round(accuracy(model, xe, ye), 4),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
    }
    (DEMO_DIR / "digits_net.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
