"""engine.data on real data: the demo's digits as PNG folders, tensor files, text, HF datasets.

Oracles are independent of the code under test: pixels are read back with PIL/numpy,
token ids with the tokenizer itself, preprocessing values with torchvision's own
weights transforms.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.data import (
    Batch,
    DataError,
    DataOptions,
    ModelFacts,
    Preprocessing,
    make_loader,
    open_data,
    prepare_data,
    preprocessing_for,
    split_source,
    subset,
)
from engine.data.digits import load_split
from engine.evaluate import evaluate
from engine.models.digits_net import DEMO_DIR, load_demo

RECORDED = json.loads((DEMO_DIR / "digits_net.json").read_text())["test_accuracy"]


@pytest.fixture(scope="module")
def demo():
    model, x = load_demo()
    return model, ModelFacts(source="arborist:demo", arch="arborist:demo", model=model,
                             example_inputs=x)


def pixels_of(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Every PNG under the class folders, read with PIL alone: (N,1,8,8) / 255, labels."""
    from PIL import Image

    xs, ys = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(class_dir.glob("*.png")):
            xs.append(np.asarray(Image.open(path), dtype=np.float32) / 255.0)
            ys.append(int(class_dir.name))
    return torch.from_numpy(np.stack(xs))[:, None], torch.tensor(ys)


def direct_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


# ------------------------------------------------------------------ image folders


def test_demo_heldout_folder_equals_a_direct_forward_and_the_recorded_accuracy(
    digit_folders, demo
):
    model, facts = demo
    source = open_data(digit_folders.heldout, model_facts=facts)
    assert source.kind == "images" and source.labeled
    assert source.classes == [str(i) for i in range(10)]
    assert source.preprocessing.source == "demo metadata"
    assert (source.preprocessing.mean, source.preprocessing.std) == (None, None)
    metrics = evaluate(model, make_loader(source, batch_size=50, num_workers=0))
    x, y = pixels_of(digit_folders.heldout)
    assert metrics.samples == len(y) == 360
    assert metrics.skipped == 0
    assert metrics.accuracy == direct_accuracy(model, x, y)
    assert round(metrics.accuracy, 4) == RECORDED


def test_loader_batches_are_the_pixels_pil_reads(digit_folders, demo):
    _, facts = demo
    source = open_data(digit_folders.heldout, model_facts=facts)
    x, y = pixels_of(digit_folders.heldout)
    batches = list(make_loader(source, batch_size=100, num_workers=0))
    assert [len(b) for b in batches] == [100, 100, 100, 60]
    torch.testing.assert_close(torch.cat([b.inputs for b in batches]), x, rtol=0, atol=1e-7)
    assert torch.equal(torch.cat([b.labels for b in batches]), y)


def test_unlabeled_folder_against_itself_agrees_fully(unlabeled_digit_folders, demo):
    model, facts = demo
    source = open_data(unlabeled_digit_folders.heldout, model_facts=facts)
    assert not source.labeled and source.classes == [] and source.targets is None
    reference = load_demo()[0]
    metrics = evaluate(model, make_loader(source, 64, num_workers=0), reference=reference)
    assert metrics.agreement == 1.0
    assert metrics.kl == 0.0
    assert metrics.accuracy is None and "accuracy" not in metrics.as_dict()
    assert metrics.samples == 360


def _small_copy(src: Path, dst: Path, per_class: int = 3) -> int:
    n = 0
    for class_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / class_dir.name).mkdir(parents=True)
        for path in sorted(class_dir.glob("*.png"))[:per_class]:
            shutil.copy(path, dst / class_dir.name / path.name)
            n += 1
    return n


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_images_are_skipped_and_counted(digit_folders, demo, tmp_path, workers):
    model, facts = demo
    good = _small_copy(digit_folders.heldout, tmp_path)
    (tmp_path / "3" / "garbage.png").write_bytes(b"this is not a png")
    whole = next((tmp_path / "5").glob("*.png")).read_bytes()
    (tmp_path / "5" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden: not a class, labels unshifted
    shutil.copy(next((tmp_path / "1").glob("*.png")), tmp_path / ".ipynb_checkpoints" / "x.png")
    source = open_data(tmp_path, model_facts=facts)
    assert len(source) == good + 2 and source.classes == [str(i) for i in range(10)]
    loader = make_loader(source, batch_size=4, num_workers=workers)
    metrics = evaluate(model, loader)
    assert (metrics.samples, metrics.skipped) == (good, 2)
    assert source.skipped == 2  # the loader's complete pass counted them too
    assert sum(len(b) for b in loader) == good


def test_folder_errors_are_one_line_data_errors(tmp_path, demo):
    _, facts = demo
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="is empty"):
        open_data(empty, model_facts=facts)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="has no images"):
        open_data(notes, model_facts=facts)
    with pytest.raises(DataError, match="does not exist"):
        open_data(tmp_path / "missing", model_facts=facts)
    assert issubclass(DataError, ValueError)


def test_any_size_and_colour_become_the_models_input(tmp_path):
    """RGB and gray JPEG/BMP/WEBP/TIFF of several sizes, for a 3x32x32 model."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, (size, mode, ext) in enumerate([((40, 50), "RGB", "jpg"), ((64, 30), "L", "bmp"),
                                           ((33, 33), "RGB", "webp"), ((90, 120), "L", "tiff"),
                                           ((20, 20), "RGBA", "png")]):
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(
            tmp_path / f"img{i}.{ext}")
    facts = ModelFacts(example_inputs=torch.zeros(1, 3, 32, 32))
    source = open_data(tmp_path, model_facts=facts)
    assert len(source) == 5 and not source.labeled
    batch = next(iter(make_loader(source, batch_size=8, num_workers=0)))
    assert tuple(batch.inputs.shape) == (5, 3, 32, 32)
    assert batch.labels is None
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    lo, hi = (0 - mean) / std, (1 - mean) / std
    assert bool((batch.inputs >= lo - 1e-5).all() and (batch.inputs <= hi + 1e-5).all())
    # HF-style models take the images by keyword: the batch says pixel_values=...
    keyed = ModelFacts(example_inputs={"pixel_values": torch.zeros(1, 3, 32, 32)})
    hf_batch = next(iter(make_loader(open_data(tmp_path, model_facts=keyed), 8, num_workers=0)))
    assert set(hf_batch.inputs) == {"pixel_values"}
    assert torch.equal(hf_batch.inputs["pixel_values"], batch.inputs)


# ------------------------------------------------------------------ preprocessing


def test_preprocessing_from_torchvision_weights_and_example_shape():
    from torchvision.models import ResNet50_Weights

    tv = preprocessing_for(ModelFacts(arch="torchvision:resnet50"))
    ref = ResNet50_Weights.DEFAULT.transforms()
    assert tv.crop == ref.crop_size[0] and tv.resize == ref.resize_size[0]
    assert tv.mean == tuple(ref.mean) and tv.std == tuple(ref.std)
    assert tv.interpolation == ref.interpolation.value
    shaped = preprocessing_for(ModelFacts(example_inputs=torch.zeros(1, 3, 96, 64)))
    assert shaped.crop == (96, 64) and shaped.resize == int(64 / 0.875)
    assert shaped.mean == (0.485, 0.456, 0.406)
    gray = preprocessing_for(ModelFacts(example_inputs=torch.zeros(1, 1, 28, 28)))
    assert gray.channels == 1 and len(gray.mean) == 1


def test_preprocessing_from_timm_cfg_and_hf_config(tmp_path):
    model = nn.Linear(2, 2)
    model.pretrained_cfg = {"input_size": (3, 288, 288), "crop_pct": 0.9, "mean": (0.5,) * 3,
                            "std": (0.25,) * 3, "interpolation": "bicubic"}
    timm_pre = preprocessing_for(ModelFacts(model=model))
    assert (timm_pre.resize, timm_pre.crop) == (320, (288, 288))
    assert timm_pre.mean == (0.5,) * 3 and timm_pre.interpolation == "bicubic"
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"shortest_edge": 256}, "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224}, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255,
        "resample": 3}))
    (tmp_path / "model.pt").write_bytes(b"")
    hf = preprocessing_for(ModelFacts(source=str(tmp_path / "model.pt")))
    assert (hf.resize, hf.crop, hf.mean, hf.interpolation) == (256, (224, 224), (0.5,) * 3,
                                                               "bicubic")
    assert hf.scale == pytest.approx(255.0)
    assert "preprocessor_config.json" in hf.source


def test_user_overrides_win_and_round_trip(digit_folders, demo):
    _, facts = demo
    pre = preprocessing_for(facts).with_overrides(resize=(6, 6), mean=(0.5,), std=(0.25,))
    assert pre == Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict())))
    source = open_data(digit_folders.heldout, model_facts=facts,
                       overrides={"resize": (6, 6), "mean": (0.5,), "std": (0.25,)})
    batch = next(iter(make_loader(source, batch_size=4, num_workers=0)))
    assert tuple(batch.inputs.shape) == (4, 1, 6, 6)
    assert source.preprocessing.to_dict() == pre.to_dict()
    rgb = pre.with_overrides(grayscale=False)
    assert rgb.channels == 3 and len(rgb.mean) == 3
    with pytest.raises(DataError, match="3-channel"):  # the demo takes 1 channel
        open_data(digit_folders.heldout, model_facts=facts, overrides={"grayscale": False})
    with pytest.raises(DataError, match="unknown field"):
        Preprocessing.from_dict({"resise": 4})


# ------------------------------------------------------------------ tensor files


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_labeled_tensor_files_evaluate_like_a_direct_forward(tmp_path, demo, suffix):
    model, facts = demo
    x, y = load_split("heldout")
    path = tmp_path / f"held{suffix}"
    if suffix == ".pt":
        torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    else:
        np.savez(path, x=x, y=y)
    source = open_data(path, model_facts=facts)
    assert source.kind == "tensors" and source.labeled and len(source) == len(y)
    metrics = evaluate(model, make_loader(source, 64))
    assert metrics.accuracy == direct_accuracy(model, torch.from_numpy(x), torch.from_numpy(y))


def test_npy_is_unlabeled_and_wrong_shapes_are_clear_errors(tmp_path, demo):
    model, facts = demo
    x, _ = load_split("heldout")
    np.save(tmp_path / "x.npy", x.astype(np.float64))  # float64 is read as float32
    source = open_data(tmp_path / "x.npy", model_facts=facts)
    assert not source.labeled
    batch = next(iter(make_loader(source, 16)))
    assert batch.inputs.dtype == torch.float32 and batch.labels is None
    np.save(tmp_path / "wrong.npy", x[:, :, :4])
    with pytest.raises(DataError, match=r"\(1, 4, 8\).*\(1, 8, 8\)") as exc:
        open_data(tmp_path / "wrong.npy", model_facts=facts)
    assert "\n" not in str(exc.value)
    torch.save({"x": torch.zeros(3, 1, 8, 8), "y": torch.zeros(4, dtype=torch.long)},
               tmp_path / "mismatch.pt")
    with pytest.raises(DataError, match="3 samples but y has 4"):
        open_data(tmp_path / "mismatch.pt", model_facts=facts)
    torch.save({"x": torch.zeros(3, 1, 8, 8), "y": torch.tensor([0, 4, 12])},
               tmp_path / "labels.pt")
    with pytest.raises(DataError, match="labels up to 12 but the model has 10 outputs"):
        evaluate(model, make_loader(open_data(tmp_path / "labels.pt", model_facts=facts), 4))
    torch.save({"inputs": torch.zeros(3, 1, 8, 8)}, tmp_path / "nokey.pt")
    with pytest.raises(DataError, match="needs 'x'"):
        open_data(tmp_path / "nokey.pt", model_facts=facts)
    torch.save({"x": torch.zeros(3, 1, 8, 8), "obj": nn.Linear(1, 1)}, tmp_path / "pickle.pt")
    with pytest.raises(DataError, match="weights_only"):
        open_data(tmp_path / "pickle.pt", model_facts=facts)


# ------------------------------------------------------------------ splits


def test_splits_are_seeded_disjoint_and_stratified(digit_folders, demo):
    _, facts = demo
    source = open_data(digit_folders.train, model_facts=facts)
    a = split_source(source, 0.2, seed=0)
    b = split_source(source, 0.2, seed=0)
    c = split_source(source, 0.2, seed=1)
    ia, ib = a.evaluation.dataset.indices, b.evaluation.dataset.indices
    assert ia == ib and ia != c.evaluation.dataset.indices
    assert not set(ia) & set(a.calibration.dataset.indices)
    assert len(ia) + len(a.calibration) == len(source)
    targets = np.array(source.targets)
    for label in range(10):  # every class is ~20% held out
        share = (targets[ia] == label).sum() / (targets == label).sum()
        assert abs(share - 0.2) < 0.02
    small = subset(source, 100, seed=0)
    assert len(small) == 100 and small.dataset.indices == subset(source, 100, 0).dataset.indices
    assert len(set(np.array(small.targets))) == 10


def test_prepare_data_choices(digit_folders, demo):
    _, facts = demo
    both = prepare_data(DataOptions(data=str(digit_folders.train),
                                    eval_data=str(digit_folders.heldout),
                                    calibration_samples=None), facts)
    assert len(both.calibration) == 1437 and len(both.evaluation) == 360
    split = prepare_data(DataOptions(data=str(digit_folders.heldout), samples=50), facts)
    assert len(split.calibration) == 50 and len(split.evaluation) == 50
    only_eval = prepare_data(DataOptions(eval_data=str(digit_folders.heldout)), facts)
    assert only_eval.calibration is None and len(only_eval.evaluation) == 360
    assert DataOptions.from_dict(split.options.to_dict()) == split.options


# ------------------------------------------------------------------ text


def make_tokenizer(tmp_path: Path, corpus: list[str]) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


CORPUS = ["the cat sat on the mat", "a dog sat on a log", "the dog saw the cat",
          "cats and dogs sat together on the mat"]


def test_text_is_tokenized_by_the_models_tokenizer_and_cut(tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok_path = make_tokenizer(tmp_path, CORPUS)
    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS) + "\n\n")
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in CORPUS))
    hf = PreTrainedTokenizerFast(tokenizer_file=str(tok_path), eos_token="</s>")
    expected = [i for t in CORPUS for i in [*hf.encode(t, add_special_tokens=False),
                                            hf.eos_token_id]]
    for name in ("corpus.txt", "corpus.jsonl"):
        source = open_data(tmp_path / name, tokenizer=tok_path, seq_len=5)
        assert source.kind == "text" and not source.labeled
        batches = list(make_loader(source, batch_size=2))
        ids = torch.cat([b.inputs["input_ids"] for b in batches])
        assert ids.shape == (len(expected) // 5, 5)
        assert ids.flatten().tolist() == expected[: ids.numel()]
    via_object = open_data(tmp_path / "corpus.txt", tokenizer=hf, seq_len=5)
    assert torch.equal(via_object.dataset[0], source.dataset[0])
    # next to the model: found without --tokenizer
    model_dir = tmp_path / "lm"
    model_dir.mkdir()
    shutil.copy(tok_path, model_dir / "tokenizer.json")
    (model_dir / "model.pt").write_bytes(b"")
    found = open_data(tmp_path / "corpus.txt", seq_len=5,
                      model_facts=ModelFacts(source=str(model_dir / "model.pt")))
    assert torch.equal(found.dataset[1], source.dataset[1])


def test_text_without_tokenizer_is_a_clear_error(tmp_path):
    (tmp_path / "c.txt").write_text("hello world\n")
    with pytest.raises(DataError, match="--tokenizer"):
        open_data(tmp_path / "c.txt")
    (tmp_path / "bad.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match='"text"'):
        open_data(tmp_path / "bad.jsonl", tokenizer=make_tokenizer(tmp_path, CORPUS))


# ------------------------------------------------------------------ HF datasets


def test_saved_hf_image_dataset(tmp_path, demo):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from engine.data.digits import to_uint8

    model, facts = demo
    x, y = load_split("heldout")
    x, y = x[:40], y[:40]
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[f"d{i}" for i in range(10)])})
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im, mode="L") for im in to_uint8(x[:, 0])],
         "label": y.tolist()}, features=features)
    splits = datasets.DatasetDict({"train": ds, "test": ds})
    splits.save_to_disk(str(tmp_path / "saved"))
    source = open_data(tmp_path / "saved", model_facts=facts)
    assert source.kind == "hf_images" and source.labeled
    assert source.classes[3] == "d3" and any("test" in n for n in source.notes)
    metrics = evaluate(model, make_loader(source, 16, num_workers=0))
    pixels = torch.from_numpy(to_uint8(x).astype(np.float32) / 255.0)
    assert metrics.accuracy == direct_accuracy(model, pixels, torch.from_numpy(y))


def test_batch_keeps_skips_through_to():
    b = Batch(torch.zeros(2, 3), torch.tensor([0, 1]), skipped=3)
    assert b.to("cpu").skipped == 3 and len(b) == 2


def test_saved_hf_text_dataset_uses_the_text_pipeline(tmp_path):
    datasets = pytest.importorskip("datasets")
    tok_path = make_tokenizer(tmp_path, CORPUS)
    datasets.Dataset.from_dict({"text": CORPUS}).save_to_disk(str(tmp_path / "texts"))
    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS))
    saved = open_data(tmp_path / "texts", tokenizer=tok_path, seq_len=4)
    plain = open_data(tmp_path / "corpus.txt", tokenizer=tok_path, seq_len=4)
    assert saved.kind == "hf_text" and len(saved) == len(plain) > 0
    assert torch.equal(saved.dataset.ids, plain.dataset.ids)
