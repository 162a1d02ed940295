"""Data in the loop: evaluation throughput, streaming memory, data-driven scoring time.

Usage: python -m benchmarks.data_eval [--quick] [--out benchmarks/results/data_eval.json]

1. Throughput: `engine.evaluate.evaluate` over `make_loader(open_data(folder))` against a
   hand-written torchvision ImageFolder + DataLoader + forward + argmax loop on the same
   model, images, batch size and workers; alternated (ABAB...), medians (target >= 0.9x).
2. Streaming: RSS of this process and of the loader's workers while a 10,000-image folder
   (64x64 RGB PNGs, 490 MB as float tensors if it were loaded whole) is evaluated.
3. Scoring: ResNet-50 (random weights, torchvision preprocessing) on 256 real images (the
   digits PNGs, read as RGB and resized to 224): activation statistics (forwards) and
   Taylor gradients (forwards + backwards, labels), then group scores, timed.
Not a test: numbers on a shared CPU are noisy, the machine's load is recorded.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.measure import machine, write_json


def tiny_convnet(classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes)).eval()


def write_noise_folder(root: Path, n: int, side: int = 64, classes: int = 10) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(
            folder / f"{i:05d}.png", compress_level=1)
    return root


# ---------------------------------------------------------------- 1. throughput


def hand_loop(model: nn.Module, folder: Path, side: int, batch: int, workers: int) -> float:
    """What a user would write with torchvision alone; returns images per second."""
    from torchvision import datasets
    from torchvision.transforms import v2

    tf = v2.Compose([v2.ToImage(), v2.Resize(int(side / 0.875)), v2.CenterCrop(side),
                     v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(folder), tf),
                                         batch_size=batch, num_workers=workers)
    t0 = time.perf_counter()
    correct = n = 0
    with torch.inference_mode():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            n += len(y)
    return n / (time.perf_counter() - t0)


def engine_loop(model: nn.Module, folder: Path, side: int, batch: int, workers: int) -> float:
    from engine.data import ModelFacts, make_loader, open_data
    from engine.evaluate import evaluate

    t0 = time.perf_counter()
    facts = ModelFacts(model=model, example_inputs=torch.zeros(1, 3, side, side))
    source = open_data(folder, model_facts=facts)
    metrics = evaluate(model, make_loader(source, batch, num_workers=workers))
    return metrics.samples / (time.perf_counter() - t0)


def throughput(folder: Path, repeats: int, batch: int = 64, workers: int = 1) -> dict[str, Any]:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    out: dict[str, Any] = {}
    for name, model, side in (("tiny_convnet_64px", tiny_convnet(), 64),
                              ("resnet18_112px", resnet18(num_classes=10).eval(), 112)):
        hand, ours = [], []
        for _ in range(repeats):
            hand.append(hand_loop(model, folder, side, batch, workers))
            ours.append(engine_loop(model, folder, side, batch, workers))
        out[name] = {"hand_written_img_s": hand, "engine_img_s": ours,
                     "ratio_of_medians": statistics.median(ours) / statistics.median(hand)}
    out["images"] = sum(1 for _ in folder.rglob("*.png"))
    out["batch_size"], out["workers"] = batch, workers
    return out


# ---------------------------------------------------------------- 2. streaming RSS


def _tree_rss_mb() -> tuple[float, float]:
    """(this process's RSS, PSS of this process + its children) in MB.

    Forked workers share the parent's pages copy-on-write; their RSS counts those pages
    again, so the sum of RSS would count the parent once per worker. PSS splits each shared
    page among the processes that map it: the sum is the memory the tree really holds.
    """
    import psutil

    me = psutil.Process()
    own = me.memory_info().rss / 2**20
    tree = me.memory_full_info().pss / 2**20
    for child in me.children(recursive=True):
        try:
            tree += child.memory_full_info().pss / 2**20
        except psutil.Error:
            pass
    return own, tree


def streaming(folder: Path, workers: int = 2) -> dict[str, Any]:
    """RSS while `folder` is evaluated, from a warm baseline: torchvision's transforms,
    PIL and one forward already done (what any run with an image model has loaded), so the
    growth is what streaming itself costs. Sampled every 0.2 s by a thread."""
    from engine.data import ModelFacts, make_loader, open_data
    from engine.data.preprocessing import Preprocessing, build_transform
    from engine.evaluate import evaluate

    model = tiny_convnet()
    build_transform(Preprocessing())  # imports torchvision.transforms.v2
    from PIL import Image  # noqa: F401

    with torch.inference_mode():
        model(torch.zeros(64, 3, 64, 64))
    base_own, base_tree = _tree_rss_mb()
    peaks = [base_own, base_tree]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            own, tree = _tree_rss_mb()
            peaks[0], peaks[1] = max(peaks[0], own), max(peaks[1], tree)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    source = open_data(folder, model_facts=ModelFacts(example_inputs=torch.zeros(1, 3, 64, 64)))
    metrics = evaluate(model, make_loader(source, 64, num_workers=workers))
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    whole_mb = metrics.samples * 3 * 64 * 64 * 4 / 2**20
    return {"images": metrics.samples, "workers": workers, "seconds": seconds,
            "rss_growth_main_mb": peaks[0] - base_own,
            "pss_growth_with_workers_mb": peaks[1] - base_tree,
            "baseline_main_mb": base_own, "whole_dataset_as_float_mb": whole_mb}


def streaming_runs(folder: Path) -> dict[str, Any]:
    return {f"workers_{w}": streaming(folder, w) for w in (0, 2)}


# ---------------------------------------------------------------- 3. scoring


def scoring(digits_root: Path, samples: int = 256, batch: int = 32) -> dict[str, Any]:
    from torchvision.models import resnet50

    from engine import DependencyGraph
    from engine.data import ModelFacts, make_loader, open_data, subset
    from engine.importance import ActivationImportance, TaylorImportance
    from engine.plan.calibration import collect_activations, compute_grads, data_calibration
    from engine.pruner.base_pruner import DEFAULT_ROOT_TYPES

    torch.manual_seed(0)
    model = resnet50(num_classes=10).eval()
    facts = ModelFacts(arch="torchvision:resnet50", model=model,
                       example_inputs=torch.zeros(1, 3, 224, 224))
    source = subset(open_data(digits_root, model_facts=facts), samples, seed=0)
    cal = data_calibration(make_loader(source, batch, num_workers=1))
    dg = DependencyGraph().build_dependency(model, torch.zeros(1, 3, 224, 224))
    groups = list(dg.get_all_groups(ignored_layers=[model.fc],
                                    root_module_types=DEFAULT_ROOT_TYPES))
    out: dict[str, Any] = {"samples": len(source), "batch_size": batch, "groups": len(groups),
                           "preprocessing": source.preprocessing.describe()}
    act = ActivationImportance()
    t0 = time.perf_counter()
    collect_activations(model, act, cal)
    t1 = time.perf_counter()
    scores = [act(g) for g in groups]
    t2 = time.perf_counter()
    out["activation"] = {"collect_s": t1 - t0, "score_s": t2 - t1,
                         "scored_groups": sum(s is not None for s in scores)}
    taylor = TaylorImportance()
    t0 = time.perf_counter()
    compute_grads(model, cal)
    t1 = time.perf_counter()
    scores = [taylor(g) for g in groups]
    t2 = time.perf_counter()
    out["taylor"] = {"gradients_s": t1 - t0, "score_s": t2 - t1,
                     "scored_groups": sum(s is not None for s in scores)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/data_eval.json")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and images")
    ap.add_argument("--only", choices=("throughput", "streaming", "scoring"),
                    help="run one part and merge it into the existing --out file")
    args = ap.parse_args()
    if args.only:
        run_one(args.only, args.out, args.quick)
        return
    from engine.data.digits import write_image_folders

    report: dict[str, Any] = {"machine_before": machine(), "quick": args.quick,
                              "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        small = write_noise_folder(root / "small", 512 if args.quick else 1024)
        report["throughput"] = throughput(small, repeats=2 if args.quick else 3)
        print("throughput", report["throughput"], flush=True)
        big = write_noise_folder(root / "big", 10_000)
        report["streaming"] = streaming_runs(big)
        print("streaming", report["streaming"], flush=True)
        digits = write_image_folders(root / "digits")
        report["scoring_resnet50"] = scoring(digits.train)
        print("scoring", report["scoring_resnet50"], flush=True)
        report["total_s"] = time.perf_counter() - t0
    report["machine_after"] = machine()
    write_json(args.out, report)


def run_one(part: str, out: str, quick: bool) -> None:
    import json

    from engine.data.digits import write_image_folders

    report = json.loads(Path(out).read_text()) if Path(out).exists() else {}
    report.setdefault("reruns", {})[part] = machine()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if part == "throughput":
            folder = write_noise_folder(root / "small", 512 if quick else 1024)
            report["throughput"] = throughput(folder, repeats=2 if quick else 3)
        elif part == "streaming":
            report["streaming"] = streaming_runs(write_noise_folder(root / "big", 10_000))
        else:
            report["scoring_resnet50"] = scoring(write_image_folders(root / "digits").train)
    print(part, report.get(part if part != "scoring" else "scoring_resnet50"), flush=True)
    write_json(out, report)


if __name__ == "__main__":
    main()
