"""The stage I losses against eq. 5-7 written out term by term."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from hf_finedefics.losses import (
    AttributeAugmentedContrastiveLoss,
    alignment_metrics,
    attribute_augmented_losses,
    category_category_loss,
    in_batch_retrieval_accuracy,
    object_category_losses,
)


def _sim(x, y, temperature):
    return (F.normalize(x, dim=-1) @ F.normalize(y, dim=-1)).item() / temperature


def _reference(o, a, c, na, nc, temperature, labels=None, masked_terms=("ac",), ccc_form="bounded"):
    """Eq. 5-7 with explicit sums; in the terms named by `masked_terms` (default: attribute -> category, whose
    same-class keys are the positive's own category name), same-label rows j != i are dropped from the in-batch
    sum when labels are given. CCC: `bounded` has the name itself as the positive, `literal` is eq. 7 as printed."""
    batch, num_negatives = na.shape[:2]

    def term(name, query, keys, negatives):
        def keep(i, j):
            return j == i or labels is None or name not in masked_terms or labels[i] != labels[j]

        positive = math.exp(_sim(query[0], keys[query[1]], temperature))
        total = sum(math.exp(_sim(query[0], keys[j], temperature)) for j in range(batch) if keep(query[1], j))
        total += sum(math.exp(_sim(query[0], n, temperature)) for n in negatives)
        return -math.log(positive / total)

    oa = sum(term("oa", (o[i], i), a, na[i]) for i in range(batch)) / batch
    ao = sum(term("ao", (a[i], i), o, []) for i in range(batch)) / batch
    ac = sum(term("ac", (a[i], i), c, nc[i]) for i in range(batch)) / batch
    ca = sum(term("ca", (c[i], i), a, na[i]) for i in range(batch)) / batch

    def ccc_row(i):
        negatives = sum(math.exp(_sim(c[i], nc[i, k], temperature)) for k in range(num_negatives))
        if ccc_form == "literal":
            return -math.log(1 / negatives)
        positive = math.exp(_sim(c[i], c[i], temperature))
        return -math.log(positive / (positive + negatives))

    ccc = sum(ccc_row(i) for i in range(batch)) / batch
    return {"oac": (oa + ao) / 2, "acc": (ac + ca) / 2, "ccc": ccc}


@pytest.fixture
def embeddings():
    generator = torch.Generator().manual_seed(0)
    batch, negatives, dim = 5, 3, 16
    shapes = [(batch, dim)] * 3 + [(batch, negatives, dim)] * 2
    return [torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in shapes]


@pytest.mark.parametrize("ccc_form", ["bounded", "literal"])
@pytest.mark.parametrize("temperature", [0.07, 1.0])
def test_losses_match_equations(embeddings, temperature, ccc_form):
    losses = attribute_augmented_losses(*embeddings, temperature=temperature, ccc_form=ccc_form)
    expected = _reference(*embeddings, temperature, ccc_form=ccc_form)
    assert set(losses) == {"oac", "acc", "ccc"}
    for name in expected:
        assert losses[name].ndim == 0
        assert losses[name].item() == pytest.approx(expected[name], rel=1e-9), name


def test_bounded_ccc_is_non_negative_and_its_gradient_vanishes_as_names_separate():
    """The bounded form has a floor of 0 that it approaches as the negatives move away, with a gradient that dies
    out; the literal form keeps falling below 0 with a gradient that does not shrink."""
    generator = torch.Generator().manual_seed(1)
    names = F.normalize(torch.randn(4, 8, generator=generator, dtype=torch.float64), dim=-1)
    noise = torch.randn(4, 3, 8, generator=generator, dtype=torch.float64)
    # Unit directions orthogonal to each row's name, to place negatives at a chosen cosine from it.
    orthogonal = F.normalize(noise - (noise * names[:, None]).sum(-1, keepdim=True) * names[:, None], dim=-1)
    gradients = {"bounded": [], "literal": []}
    for cosine in (0.9, 0.0, -0.9):
        negatives = (cosine * names[:, None] + (1 - cosine**2) ** 0.5 * orthogonal).requires_grad_()
        for form in gradients:
            loss = category_category_loss(names, negatives, 0.07, form)
            (gradient,) = torch.autograd.grad(loss, negatives)
            gradients[form].append(gradient.norm().item())
            if form == "bounded":
                assert loss.item() >= 0
    assert gradients["bounded"][-1] < 1e-3 * gradients["bounded"][0]
    assert gradients["literal"][-1] > 0.1 * gradients["literal"][0]
    with pytest.raises(ValueError, match="ccc_form"):
        AttributeAugmentedContrastiveLoss(ccc_form="printed")


def test_default_masks_only_the_positives_own_text(embeddings):
    """The paper's eq. 5-7: every other row is a negative, except a same-class row's category name in the
    attribute -> category term (the positive's own text)."""
    labels = torch.tensor([0, 1, 0, 2, 1])
    losses = attribute_augmented_losses(*embeddings, labels=labels)
    expected = _reference(*embeddings, 0.07, labels=labels.tolist())
    unmasked = attribute_augmented_losses(*embeddings)
    for name in expected:
        assert losses[name].item() == pytest.approx(expected[name], rel=1e-9), name
    # OAC keeps same-class instances as negatives; ACC differs through its attribute -> category half only.
    assert losses["oac"].item() == pytest.approx(unmasked["oac"].item(), rel=1e-12)
    assert losses["acc"].item() != pytest.approx(unmasked["acc"].item(), rel=1e-6)
    # The module with default settings does the same.
    _, terms = AttributeAugmentedContrastiveLoss()(*embeddings, labels=labels)
    assert terms["oac"].item() == pytest.approx(expected["oac"], rel=1e-9)
    assert terms["acc"].item() == pytest.approx(expected["acc"], rel=1e-9)


def test_same_class_masking_in_every_term_is_an_option(embeddings):
    labels = torch.tensor([0, 1, 0, 2, 1])
    losses = attribute_augmented_losses(*embeddings, labels=labels, same_class_masking="all_terms")
    expected = _reference(*embeddings, 0.07, labels=labels.tolist(), masked_terms=("oa", "ao", "ac", "ca"))
    default = attribute_augmented_losses(*embeddings, labels=labels)
    for name in expected:
        assert losses[name].item() == pytest.approx(expected[name], rel=1e-9), name
    assert losses["oac"].item() != pytest.approx(default["oac"].item(), rel=1e-6)
    # CCC only looks at a row's own hard negatives.
    assert losses["ccc"].item() == pytest.approx(default["ccc"].item())
    with pytest.raises(ValueError, match="same_class_masking"):
        AttributeAugmentedContrastiveLoss(same_class_masking="everything")


def test_hard_negatives_are_per_row(embeddings):
    o, a, c, na, nc = embeddings
    base = attribute_augmented_losses(o, a, c, na, nc)
    # A shared pool would let row 0's negatives enter every row's denominator; the reference sums each
    # row over its own negatives only, so agreement after changing row 0's negatives pins that down.
    na2, nc2 = na.clone(), nc.clone()
    na2[0] = torch.randn_like(na2[0])
    nc2[0] = torch.randn_like(nc2[0])
    changed = attribute_augmented_losses(o, a, c, na2, nc2)
    expected = _reference(o, a, c, na2, nc2, 0.07)
    for name in expected:
        assert changed[name].item() == pytest.approx(expected[name], rel=1e-9)
        assert changed[name].item() != pytest.approx(base[name].item(), rel=1e-6)


def test_inputs_need_not_be_normalised(embeddings):
    scaled = [x * 7.5 for x in embeddings]
    for name, value in attribute_augmented_losses(*scaled).items():
        assert value.item() == pytest.approx(attribute_augmented_losses(*embeddings)[name].item(), rel=1e-9)


def test_released_behaviour_differs_and_uses_column_zero(embeddings):
    o, a, c, na, nc = embeddings
    released = attribute_augmented_losses(*embeddings, reproduce_released=True)
    paper = attribute_augmented_losses(*embeddings)
    assert released["ccc"].item() != pytest.approx(paper["ccc"].item())
    pool = F.normalize(torch.cat([c, nc.flatten(0, 1)]), dim=-1)
    logits = F.normalize(c, dim=-1) @ pool.T / 0.07
    expected_ccc = F.cross_entropy(logits, torch.zeros(len(c), dtype=torch.long))
    assert released["ccc"].item() == pytest.approx(expected_ccc.item(), rel=1e-9)


def test_shape_mismatch_is_reported(embeddings):
    o, a, c, na, nc = embeddings
    with pytest.raises(ValueError, match="neg_category_embeds"):
        attribute_augmented_losses(o, a, c, na, nc[:, :2])


def test_loss_module_weights_terms(embeddings):
    loss = AttributeAugmentedContrastiveLoss(oac_weight=1.0, acc_weight=0.0, ccc_weight=2.0)
    total, terms = loss(*embeddings)
    assert total.item() == pytest.approx(terms["oac"].item() + 2 * terms["ccc"].item())


def test_gradients_flow_to_all_inputs(embeddings):
    inputs = [x.clone().requires_grad_() for x in embeddings]
    sum(attribute_augmented_losses(*inputs).values()).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in inputs)


def test_retrieval_accuracy():
    keys = torch.eye(4)
    queries = torch.eye(4)[[0, 2, 2, 3]]
    assert in_batch_retrieval_accuracy(queries, keys).item() == pytest.approx(0.75)
    assert in_batch_retrieval_accuracy(queries, keys, labels=torch.tensor([0, 1, 1, 2])).item() == 1.0


def test_retrieval_with_hard_negatives_and_alignment_metrics_by_hand():
    """Row 0 finds its positive; row 1 is beaten by its hard negative; row 2 by another row of the batch (right only
    when that row is of its class); the cosines are the plain means."""
    keys = torch.eye(3)
    queries = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.1, 0.0, 0.0]])
    negatives = torch.stack([-torch.eye(3)[[1]], torch.tensor([[0.0, 0.28, 0.96]]), -torch.eye(3)[[0]]])
    assert in_batch_retrieval_accuracy(queries, keys, negatives=negatives).item() == pytest.approx(1 / 3)
    same_class = torch.tensor([0, 1, 0])
    assert in_batch_retrieval_accuracy(queries, keys, same_class, negatives).item() == pytest.approx(2 / 3)
    outputs = SimpleNamespace(object_embeds=queries, category_embeds=keys, neg_category_embeds=negatives)
    metrics = alignment_metrics(outputs, "object_category")
    assert set(metrics) == {
        "accuracy_object_to_category",
        "cosine_positive_object_to_category",
        "cosine_negative_object_to_category",
    }
    assert metrics["cosine_positive_object_to_category"].item() == pytest.approx((1 + 0.6 + 0) / 3)
    assert metrics["cosine_negative_object_to_category"].item() == pytest.approx((0 + 0.936 - 1) / 3, abs=1e-6)


def test_object_category_ablation_matches_its_equation(embeddings):
    """Table 3b: eq. 5 with category names for attribute descriptions; same-class names masked object -> category."""
    o, _, c, _, nc = embeddings
    labels = [0, 1, 0, 2, 1]
    batch = len(labels)

    def term(query, keys, positive, negatives, masked):
        total = sum(
            math.exp(_sim(query, keys[j], 0.07))
            for j in range(batch)
            if j == positive or not masked or labels[j] != labels[positive]
        )
        total += sum(math.exp(_sim(query, n, 0.07)) for n in negatives)
        return -math.log(math.exp(_sim(query, keys[positive], 0.07)) / total)

    oc = sum(term(o[i], c, i, nc[i], masked=True) for i in range(batch)) / batch
    co = sum(term(c[i], o, i, [], masked=False) for i in range(batch)) / batch
    losses = object_category_losses(o, c, nc, labels=torch.tensor(labels))
    assert losses["oc"].item() == pytest.approx((oc + co) / 2, rel=1e-9)
    total, terms = AttributeAugmentedContrastiveLoss(objective="object_category")(
        *embeddings, labels=torch.tensor(labels)
    )
    assert set(terms) == {"oc"} and total.item() == pytest.approx(0.5 * (oc + co) / 2, rel=1e-9)
