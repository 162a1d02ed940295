"""A recovery run for the data-parallel tests: `torchrun ... recover_ddp_run.py OUT BATCH STEPS`.

Rank 0 writes the report JSON to OUT. Same seed, data and recipe in every launch, so
one process with batch 2B and two with B each see the same global batches.
"""

import copy
import json
import sys

import torch
from torch.utils.data import DataLoader, TensorDataset

from engine.data.digits import load_split
from engine.models.digits_net import load_demo
from engine.plan import PruningPlan, apply_plan
from engine.recover import Budget, RecoveryConfig, make_accelerator, recover


def main() -> None:
    out, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    model, x = load_demo()
    teacher = copy.deepcopy(model)
    apply_plan(model, x, PruningPlan(pruning_ratio=0.4))
    xt, yt = map(torch.from_numpy, load_split("train"))
    loader = DataLoader(TensorDataset(xt, yt), batch_size=batch, shuffle=True)
    config = RecoveryConfig(budget=Budget(steps=steps), batch_size=batch, eval_every=1,
                            freeze_bn=True, recalibrate_bn=False, lr=2e-3, seed=3, device="cpu")
    acc = make_accelerator(config)
    report = recover(model, loader, teacher=teacher, config=config, accelerator=acc)
    if acc.is_main_process:
        with open(out, "w") as f:
            json.dump(report.to_dict(), f)


if __name__ == "__main__":
    main()
