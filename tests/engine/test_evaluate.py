"""engine.evaluate and the data-driven calibration, checked against hand computations.

Exact oracles: accuracy/top-5/KL/perplexity recomputed with numpy from the same logits;
the batch-by-batch calibration backward equals one backward of the whole-set loss; a
toy network whose dead-on-data channels Taylor (with labels) and activation must prune,
while random-input Taylor does not.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.data import Batch, make_loader, open_data
from engine.evaluate import Metrics, evaluate
from engine.plan import Cancelled, PruningPlan, apply_plan, preview_plan
from engine.plan.calibration import compute_grads, data_calibration


def log_softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


class Fixed(nn.Module):
    """Returns logits stored per sample index (input = the index), so outputs are known."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx.long().flatten()]


def test_classifier_metrics_equal_hand_computation():
    gen = torch.Generator().manual_seed(0)
    n, c = 103, 12
    logits = torch.randn(n, c, generator=gen) * 3
    ref_logits = logits + torch.randn(n, c, generator=gen)
    labels = torch.randint(0, c, (n,), generator=gen)
    idx = torch.arange(n)
    batches = [Batch(idx[i:i + 10], labels[i:i + 10]) for i in range(0, n, 10)]
    m = evaluate(Fixed(logits), batches, reference=Fixed(ref_logits))
    z, r = logits.numpy().astype(np.float64), ref_logits.numpy().astype(np.float64)
    y = labels.numpy()
    assert m.samples == n and m.skipped == 0
    assert m.accuracy == (z.argmax(1) == y).sum() / n
    top5 = np.argsort(-z, axis=1)[:, :5]
    assert m.top5 == (top5 == y[:, None]).any(1).sum() / n
    assert m.agreement == (z.argmax(1) == r.argmax(1)).sum() / n
    lp, lq = log_softmax_np(r), log_softmax_np(z)
    assert m.kl == pytest.approx((np.exp(lp) * (lp - lq)).sum(1).mean(), rel=1e-12)
    assert set(m.as_dict()) == {"samples", "skipped", "accuracy", "top5", "agreement", "kl"}


def test_plain_dataloader_items_and_no_top5_for_few_classes():
    model = Fixed(torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0]]))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.arange(3), torch.tensor([0, 2, 2])), batch_size=2)
    m = evaluate(model, loader)
    assert m.accuracy == pytest.approx(2 / 3) and m.top5 is None


def test_other_outputs_cosine_and_relative_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3)))  # N x 2 x 3 features
    x = torch.randn(20, 4)
    same = evaluate(model, [Batch(x)], reference=copy.deepcopy(model))
    assert same.cosine == pytest.approx(1.0) and same.relative_error == 0.0
    assert same.accuracy is None and same.agreement is None and same.kl is None
    regression = nn.Linear(4, 1)
    ref = copy.deepcopy(regression)
    with torch.no_grad():
        ref.bias.add_(0.5)
        out, want = regression(x).double(), ref(x).double()
    m = evaluate(regression, [Batch(x[:7]), Batch(x[7:])], reference=ref)
    expected = float((out - want).norm() / want.norm())
    assert m.relative_error == pytest.approx(expected, rel=1e-9)
    cos = float(F.cosine_similarity(out, want, dim=1, eps=1e-12).mean())
    assert m.cosine == pytest.approx(cos, rel=1e-9)


class TinyLM(nn.Module):
    """A causal LM in HF style: model(input_ids=...) -> {"logits": N x T x V}."""

    def __init__(self, vocab: int, width: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.mix = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab)

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.emb(input_ids)
        h = torch.cumsum(h, dim=1) / torch.arange(1, h.shape[1] + 1)[None, :, None]  # causal
        return {"logits": self.head(torch.tanh(self.mix(h)))}


@pytest.fixture
def text_corpus(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    lines = [f"word{i % 7} word{(i * 3) % 11} and word{i % 5}" for i in range(40)]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(lines, trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]))
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "corpus.txt").write_text("\n".join(lines))
    return tmp_path, tok.get_vocab_size()


def test_perplexity_is_exp_of_the_hand_computed_mean_nll(text_corpus):
    folder, vocab = text_corpus
    torch.manual_seed(0)
    model = TinyLM(vocab)
    source = open_data(folder / "corpus.txt", tokenizer=folder / "tokenizer.json", seq_len=9)
    m = evaluate(model, make_loader(source, batch_size=4))
    ids = torch.stack([source.dataset[i] for i in range(len(source))])
    with torch.no_grad():
        z = model(input_ids=ids)["logits"].double().numpy()
    lp = log_softmax_np(z[:, :-1])
    target = ids[:, 1:].numpy()
    nll = -np.take_along_axis(lp, target[..., None], axis=-1).mean()
    assert m.tokens == target.size
    assert m.perplexity == pytest.approx(float(np.exp(nll)), rel=1e-10)
    assert m.accuracy is None
    same = evaluate(model, make_loader(source, 4), reference=copy.deepcopy(model))
    assert same.agreement == 1.0 and same.kl == pytest.approx(0.0, abs=1e-12)


def test_training_flags_are_restored_and_bn_untouched():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 5))
    model.train()
    model[2].eval()
    stats = model[1].running_mean.clone()
    evaluate(model, [Batch(torch.randn(8, 3) * 5 + 3)])
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(model[1].running_mean, stats)


def test_cancel_and_progress():
    model = Fixed(torch.randn(30, 4))
    seen = []
    batches = [Batch(torch.arange(i, i + 10)) for i in (0, 10, 20)]
    messages = []
    evaluate(model, batches, progress=lambda d, t, msg: (seen.append(d), messages.append(msg)))
    assert seen == [10, 20, 30]
    assert messages == [f"batch {k}/3 ({10 * k} samples)" for k in (1, 2, 3)]
    with pytest.raises(Cancelled):
        evaluate(model, batches, cancel=lambda: True)
    assert Metrics(samples=3).as_dict() == {"samples": 3, "skipped": 0}


# ------------------------------------------------------------------ calibration


def test_batchwise_backward_equals_whole_set_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4))
    x, y = torch.randn(23, 5), torch.randint(0, 4, (23,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6)
    compute_grads(model, data_calibration(loader))
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for g, want in zip(got, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-7)


def test_calibration_passes_report_each_batch_and_compute_the_same():
    """Observing a pass (on_batch, apply_plan's progress) changes no gradient and no cut."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4))
    x, y = torch.randn(23, 5), torch.randint(0, 4, (23,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6)
    compute_grads(model, data_calibration(loader))
    quiet = [p.grad.clone() for p in model.parameters()]
    ticks: list[tuple[int, int]] = []
    compute_grads(model, data_calibration(loader), on_batch=lambda k, n: ticks.append((k, n)))
    assert ticks == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for g, want in zip([p.grad for p in model.parameters()], quiet, strict=True):
        assert torch.equal(g, want)
    net, xs, ys = dead_unit_net()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, ys), batch_size=16)
    for criterion, what in (("activation", "activations"), ("taylor", "gradients")):
        plan = PruningPlan(importance=criterion, pruning_ratio=0.5, iterative_steps=2)
        seen: list[tuple[int, int, str]] = []
        observed = apply_plan(copy.deepcopy(net), xs[:1], plan,
                              calibration=data_calibration(data),
                              progress=lambda d, t, m, seen=seen: seen.append((d, t, m)))
        plain = apply_plan(copy.deepcopy(net), xs[:1], plan, calibration=data_calibration(data))
        assert observed.history == plain.history, criterion
        cal = [m for _, _, m in seen if "calibration batch" in m]
        assert cal == [f"step {s}/2: calibration batch {k}/4 ({what})"
                       for s in (1, 2) for k in (1, 2, 3, 4)]
        done = [d / t for d, t, _ in seen]
        assert all(a < b for a, b in zip(done, done[1:], strict=False)), (criterion, seen)


def test_label_free_loss_uses_the_original_predictions_and_lm_next_token(text_corpus):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4))
    x = torch.randn(12, 5)
    cal = data_calibration([Batch(x[:5]), Batch(x[5:])])
    with torch.no_grad():
        original = model(x).argmax(1)
    with torch.no_grad():
        assert float(cal(model)) == pytest.approx(float(F.cross_entropy(model(x), original)))
        model[2].bias.copy_(torch.tensor([5.0, -5.0, 0.0, 0.0]))  # the model moves; the
        moved = model(x)  # targets stay the original's predictions
        assert moved.argmax(1).tolist() != original.tolist()
        assert float(cal(model)) == pytest.approx(float(F.cross_entropy(moved, original)))
    folder, vocab = text_corpus
    lm = TinyLM(vocab)
    source = open_data(folder / "corpus.txt", tokenizer=folder / "tokenizer.json", seq_len=6)
    ids = torch.stack([source.dataset[i] for i in range(len(source))])
    logits = lm(input_ids=ids)["logits"]
    want = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
    got = data_calibration(make_loader(source, 5))(lm)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-6)


def dead_unit_net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """8 hidden units; units 0-3 never fire on the real (non-negative) inputs but carry big
    weights, so on random N(0,1) inputs they fire often and dominate the outputs."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight[:4] = -2.0
        net[0].bias[:4] = -1.0
        net[0].weight[4:] = torch.rand(4, 4) * 0.3 + 0.1
        net[0].bias[4:] = 0.1
        net[2].weight[:, :4] = 3.0 * torch.tensor([[1.0], [-1.0], [0.5]])
        net[2].weight[:, 4:] = torch.randn(3, 4) * 0.3
    x = torch.rand(64, 4)  # real data: non-negative
    y = torch.randint(0, 3, (64,))
    return net, x, y


def removed_hidden(criterion: str, calibration=None, seen: list | None = None) -> set[int]:
    net, x, _ = dead_unit_net()
    plan = PruningPlan(importance=criterion, pruning_ratio=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the example batch (32 samples) is what random-input calibration imitates
        outcome = apply_plan(net, x[:32], plan, calibration=calibration)
    if seen is not None:
        seen.extend(str(w.message) for w in caught)
    return {int(i) for name, out, idxs in outcome.history if name == "0" and out for i in idxs}


def test_taylor_with_labels_prunes_what_the_data_says_random_inputs_do_not():
    net, x, y = dead_unit_net()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    dead = {0, 1, 2, 3}
    assert removed_hidden("taylor", data_calibration(loader)) == dead
    caught: list[str] = []
    random_removed = removed_hidden("taylor", seen=caught)
    assert random_removed != dead and len(random_removed) == 4
    assert any("random batch" in message for message in caught)
    caught.clear()
    removed_hidden("taylor", data_calibration(loader), seen=caught)
    assert not any("random batch" in message for message in caught)
    assert removed_hidden("activation", data_calibration(loader)) == dead
    assert removed_hidden("hessian", data_calibration(loader)) == dead


def test_preview_with_data_matches_the_real_prune():
    net, x, y = dead_unit_net()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    for criterion in ("taylor", "activation", "fpgm"):
        cal = data_calibration(loader)
        plan = PruningPlan(importance=criterion, pruning_ratio=0.5)
        preview = preview_plan(net, x[:1], plan, calibration=cal)
        planned = {int(i) for p in preview.groups if p.root_name == "0" for i in p.idxs}
        pruned = copy.deepcopy(net)
        outcome = apply_plan(pruned, x[:1], plan, calibration=cal)
        done = {int(i) for name, out, idxs in outcome.history if name == "0" for i in idxs}
        assert planned == done, criterion


def test_hf_causal_lm_perplexity_equals_its_own_loss_and_taylor_runs_on_text(text_corpus):
    transformers = pytest.importorskip("transformers")
    import math

    from engine.data import ModelFacts

    folder, vocab = text_corpus
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2,
                                     n_positions=16, bos_token_id=1, eos_token_id=1)
    model = transformers.GPT2LMHeadModel(config).eval()
    example = {"input_ids": torch.zeros(1, 16, dtype=torch.long)}
    source = open_data(folder / "corpus.txt", tokenizer=folder / "tokenizer.json",
                       model_facts=ModelFacts(model=model, example_inputs=example))
    assert source.dataset.seq_len == 16  # the model's context
    m = evaluate(model, make_loader(source, 4))
    ids = torch.stack([source.dataset[i] for i in range(len(source))])
    with torch.no_grad():
        hf_loss = model(input_ids=ids, labels=ids).loss  # HF's own mean next-token NLL
    assert m.perplexity == pytest.approx(math.exp(float(hf_loss)), rel=1e-5)
    pruned = copy.deepcopy(model)
    apply_plan(pruned, example, PruningPlan(importance="taylor", pruning_ratio=0.25),
               calibration=data_calibration(make_loader(source, 4)))
    after = evaluate(pruned, make_loader(source, 4), reference=model)
    assert after.perplexity is not None and 0 < after.agreement < 1 and after.kl > 0
