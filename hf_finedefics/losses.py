"""Attribute augmented contrastive losses of Finedefics stage I (paper section 3.2, eq. 5-7).

Objects o, attribute descriptions a and category names c are last-token embeddings from the LLM
(`hf_finedefics.embeddings`); every row i also brings its own K hard negatives: attribute descriptions
A_hn^i and category names C_hn^i of the K most similar incorrect categories.

With Sim(x, y) = cos(x, y) / temperature:

- OAC (eq. 5)  = (L_OA^hn + L_AO) / 2: object -> attribute over the batch plus A_hn^i, and
  attribute -> object over the batch.
- ACC (eq. 6)  = (L_AC^hn + L_CA^hn) / 2: attribute -> category over the batch plus C_hn^i, and
  category -> attribute over the batch plus A_hn^i.
- CCC (eq. 7): pushes each category name away from the names of its own hard negatives (intra-modal). By default
  (`ccc_form="bounded"`) it is the intra-modal InfoNCE the paper cites, with the row's own name as the positive:
  -log( exp Sim(c^i, c^i) / (exp Sim(c^i, c^i) + sum_{c^k in C_hn^i} exp Sim(c^i, c^k)) ), bounded below by 0, whose
  gradient vanishes once the names are apart. `ccc_form="literal"` is eq. 7 as printed,
  log sum_{c^k in C_hn^i} exp Sim(c^i, c^k): with no positive, its gradient is a softmax over the negatives times
  1/temperature and never shrinks. On the embedded default that term alone moved in stage I: its weighted gradient
  norm on the language-model LoRA measured 25-41 against 0.8-1.0 for the generation loss, 1-6 for OAC and 5-24 for
  ACC, and the attribute -> category term stayed at chance (REFERENCE.md section 7).

Each term is a mean over the batch rows. As in the paper, every other row of the batch is a negative (instance
level, same class or not), with one exception when `labels` is given: in the attribute -> category term the
category name of a same-class row j != i is the same text as the positive, so it is left out
(`same_class_masking="duplicate_text"`, the default). `same_class_masking="all_terms"` leaves same-class rows out
of every in-batch denominator instead (a wider, non-paper variant).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  (registers torch.distributed.nn.functional.all_gather)
import torch.nn.functional as F
from torch import nn

LOSS_TERMS = ("oac", "acc", "ccc")
SameClassMasking = Literal["duplicate_text", "all_terms"]
Objective = Literal["attribute_augmented", "object_category"]
OBJECTIVES: tuple[Objective, ...] = ("attribute_augmented", "object_category")
SAME_CLASS_MASKINGS: tuple[SameClassMasking, ...] = ("duplicate_text", "all_terms")
CCCForm = Literal["bounded", "literal"]
CCC_FORMS: tuple[CCCForm, ...] = ("bounded", "literal")

FINEDEFICS_CITATION = """@inproceedings{he2025finedefics,
  title={Analyzing and Boosting the Power of Fine-Grained Visual Recognition for Multi-modal Large Language Models},
  author={He, Hulingxiao and Li, Geng and Geng, Zijun and Xu, Jinglin and Peng, Yuxin},
  booktitle={International Conference on Learning Representations (ICLR)},
  year={2025}
}"""


@dataclass
class AttributeAugmentedLossConfig:
    """The settings of the stage I objective (eq. 8): temperature, term weights, negatives and masking.

    Both stage configs inherit these fields, so a recipe sets them the same way for stage I and for the one-stage
    paradigm of stage II; `loss_config()` on either returns this object.
    """

    objective: Objective = field(
        default="attribute_augmented",
        metadata={
            "help": "attribute_augmented: OAC + ACC + CCC (the paper's stage I); object_category: the Table 3b "
            "ablation, object<->category contrastive with category hard negatives, no attribute text (the generation "
            "task answers with the category name)."
        },
    )
    temperature: float = field(
        default=0.07,
        metadata={"help": "Temperature dividing cosine similarities in every contrastive term (not trained)."},
    )
    generation_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of L_G^att, the attribute description generation loss."}
    )
    oac_weight: float = field(
        default=0.5, metadata={"help": "Weight of the object-attribute contrastive loss (eq. 5)."}
    )
    acc_weight: float = field(
        default=0.5, metadata={"help": "Weight of the attribute-category contrastive loss (eq. 6)."}
    )
    ccc_weight: float = field(
        default=0.5, metadata={"help": "Weight of the category-category contrastive loss (eq. 7)."}
    )
    ccc_form: CCCForm = field(
        default="bounded",
        metadata={
            "help": "bounded: CCC as an InfoNCE with each name itself as the positive (>= 0, its gradient vanishes as "
            "names separate); literal: eq. 7 as printed, a log-sum-exp over the hard negatives with no positive, "
            "whose gradient never shrinks and dominated stage I on the embedded default."
        },
    )
    oc_weight: float = field(
        default=0.5, metadata={"help": "Weight of the object-category contrastive loss (objective=object_category)."}
    )
    gather_across_processes: bool = field(
        default=True,
        metadata={"help": "Gather embeddings (with gradients) so in-batch negatives span the global batch."},
    )
    same_class_masking: SameClassMasking = field(
        default="duplicate_text",
        metadata={
            "help": "duplicate_text (the paper): mask only in-batch keys that are the positive's own text (same-class "
            "category names in the attribute->category term); all_terms: mask same-class rows in every in-batch term."
        },
    )
    reproduce_released_losses: bool = field(
        default=False,
        metadata={
            "help": "Reproduce the authors' released losses (shared hard-negative pool, CCC against column 0). "
            "A reproduction aid only; it does not implement the paper."
        },
    )

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}.")
        if self.objective == "object_category" and self.reproduce_released_losses:
            raise ValueError("reproduce_released_losses applies to the attribute_augmented objective only.")
        if self.same_class_masking not in SAME_CLASS_MASKINGS:
            raise ValueError(
                f"same_class_masking must be one of {', '.join(SAME_CLASS_MASKINGS)}, got {self.same_class_masking!r}."
            )
        if self.ccc_form not in CCC_FORMS:
            raise ValueError(f"ccc_form must be one of {', '.join(CCC_FORMS)}, got {self.ccc_form!r}.")

    def loss_config(self) -> AttributeAugmentedLossConfig:
        """These settings alone (a stage config inherits them among its training arguments)."""
        names = [f.name for f in dataclasses.fields(AttributeAugmentedLossConfig)]
        return AttributeAugmentedLossConfig(**{name: getattr(self, name) for name in names})

    def get_config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.loss_config())

    def card_rows(self) -> dict[str, Any]:
        """The objective as a model card lists it."""
        config = self.loss_config()
        if config.objective == "object_category":
            weights = {"loss weights (gen, OC)": (config.generation_loss_weight, config.oc_weight)}
        else:
            terms = (config.generation_loss_weight, config.oac_weight, config.acc_weight, config.ccc_weight)
            weights = {"loss weights (gen, OAC, ACC, CCC)": terms}
        return {
            "objective": config.objective,
            **({"CCC form": config.ccc_form} if config.objective == "attribute_augmented" else {}),
            "temperature": config.temperature,
            **{name: ", ".join(str(weight) for weight in values) for name, values in weights.items()},
        }


def _gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 keeping the autograd graph, so every process's rows are in-batch negatives and
    gradients flow back to the process that produced each row."""
    return torch.cat(torch.distributed.nn.functional.all_gather(tensor.contiguous()), dim=0)


def _gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


def _check_equal_batch_sizes(batch_size: int, device: torch.device) -> None:
    sizes = _gather_no_grad(torch.tensor([batch_size], device=device))
    if not torch.all(sizes == batch_size):
        raise ValueError(
            f"Gathering in-batch negatives needs the same batch size on every process, got {sizes.tolist()}. "
            "Set `dataloader_drop_last=True`."
        )


def distributed_is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _in_batch_logits(
    queries: torch.Tensor,
    keys: torch.Tensor,
    positives: torch.Tensor,
    query_labels: torch.Tensor | None,
    key_labels: torch.Tensor | None,
) -> torch.Tensor:
    """(B, N) similarity logits; same-label keys other than the positive are masked out."""
    logits = queries @ keys.T
    if query_labels is not None:
        same_label = query_labels[:, None] == key_labels[None, :]
        same_label[torch.arange(len(queries), device=logits.device), positives] = False
        logits = logits.masked_fill(same_label, float("-inf"))
    return logits


def _batch_keys(
    tensors: tuple[torch.Tensor, ...],
    labels: torch.Tensor | None,
    gather_across_processes: bool,
    same_class_masking: SameClassMasking,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, Callable[..., torch.Tensor]]:
    """The in-batch keys (gathered over processes when asked), each query row's positive column, and
    `in_batch(queries, keys, duplicate_text=False)` giving masked (B, N) logits: same-class keys are masked where
    they are the positive's own text (`duplicate_text`), or everywhere with `same_class_masking="all_terms"`."""
    if same_class_masking not in SAME_CLASS_MASKINGS:
        raise ValueError(f"same_class_masking must be one of {SAME_CLASS_MASKINGS}, got {same_class_masking!r}.")
    # Queries are this process's rows; keys are the (global) batch. Positives sit at offset + i.
    batch_size, device = tensors[0].shape[0], tensors[0].device
    offset, keys, all_labels = 0, tensors, labels
    if gather_across_processes and distributed_is_active():
        _check_equal_batch_sizes(batch_size, device)
        offset = dist.get_rank() * batch_size
        keys = tuple(_gather_with_grad(x) for x in tensors)
        all_labels = _gather_no_grad(labels) if labels is not None else None
    # Hard negatives come after the N in-batch columns, so the positive index is unchanged.
    positives = offset + torch.arange(batch_size, device=device)
    mask_all = same_class_masking == "all_terms"

    def in_batch(queries: torch.Tensor, keys: torch.Tensor, duplicate_text: bool = False) -> torch.Tensor:
        masked = mask_all or duplicate_text
        return _in_batch_logits(queries, keys, positives, *((labels, all_labels) if masked else (None, None)))

    return keys, positives, in_batch


def _hard_negative_logits(queries: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """(B, K) similarity of each row to its own K negatives."""
    return torch.einsum("bd,bkd->bk", queries, negatives)


def category_category_loss(
    categories: torch.Tensor, neg_categories: torch.Tensor, temperature: float, form: CCCForm = "bounded"
) -> torch.Tensor:
    """CCC (eq. 7) on normalised (B, D) names and their (B, K, D) hard-negative names, averaged over rows: `bounded`
    adds each name's similarity to itself as the positive; `literal` is the log-sum-exp over the negatives alone."""
    negatives = _hard_negative_logits(categories, neg_categories)
    if form == "literal":
        return torch.logsumexp(negatives / temperature, dim=1).mean()
    if form != "bounded":
        raise ValueError(f"ccc_form must be one of {', '.join(CCC_FORMS)}, got {form!r}.")
    itself = (categories * categories).sum(-1, keepdim=True)
    logits = torch.cat([itself, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def _released_losses(
    objects: torch.Tensor,
    attributes: torch.Tensor,
    categories: torch.Tensor,
    neg_attributes: torch.Tensor,
    neg_categories: torch.Tensor,
    temperature: float,
) -> dict[str, torch.Tensor]:
    # The authors' release: all rows' hard negatives pooled into one shared set, and the category-category
    # term contrasting every row against column 0 (the batch's first category).
    targets = torch.arange(len(objects), device=objects.device)
    attribute_pool = torch.cat([attributes, neg_attributes.flatten(0, 1)])
    category_pool = torch.cat([categories, neg_categories.flatten(0, 1)])
    oa = F.cross_entropy(objects @ attribute_pool.T / temperature, targets)
    ao = F.cross_entropy(attributes @ objects.T / temperature, targets)
    ac = F.cross_entropy(attributes @ category_pool.T / temperature, targets)
    ca = F.cross_entropy(categories @ attribute_pool.T / temperature, targets)
    ccc = F.cross_entropy(categories @ category_pool.T / temperature, torch.zeros_like(targets))
    return {"oac": (oa + ao) / 2, "acc": (ac + ca) / 2, "ccc": ccc}


def attribute_augmented_losses(
    object_embeds: torch.Tensor,
    attribute_embeds: torch.Tensor,
    category_embeds: torch.Tensor,
    neg_attribute_embeds: torch.Tensor,
    neg_category_embeds: torch.Tensor,
    temperature: float = 0.07,
    labels: torch.Tensor | None = None,
    *,
    gather_across_processes: bool = False,
    reproduce_released: bool = False,
    same_class_masking: SameClassMasking = "duplicate_text",
    ccc_form: CCCForm = "bounded",
) -> dict[str, torch.Tensor]:
    """OAC, ACC and CCC losses (eq. 5-7) with per-row hard negatives.

    Args:
        object_embeds: (B, D) object embeddings o.
        attribute_embeds: (B, D) attribute description embeddings a (row i describes object i).
        category_embeds: (B, D) category name embeddings c (row i names object i's category).
        neg_attribute_embeds: (B, K, D) row i's hard-negative attribute descriptions A_hn^i.
        neg_category_embeds: (B, K, D) row i's hard-negative category names C_hn^i.
        temperature: similarities are cosine / temperature in every term (1.0 is the paper's literal form).
        labels: optional (B,) class ids, used by `same_class_masking`.
        gather_across_processes: under torch.distributed, in-batch negatives span the global batch
            (gathered with gradients); each process scores its own rows, so the mean over processes of
            these losses equals the single-process loss on the global batch, gradients included.
        reproduce_released: reproduce the authors' released code (shared negative pool, CCC against
            column 0, no label masking). A reproduction aid only: it does not implement the paper.
        same_class_masking: with `labels`, "duplicate_text" (the paper) leaves out only the category names of
            same-class rows in the attribute -> category term (they are the positive's own text); "all_terms"
            leaves same-class rows out of every in-batch term.
        ccc_form: "bounded" (each name is its own positive) or "literal" (eq. 7 as printed); see
            `category_category_loss`.

    Returns:
        dict with scalar tensors "oac", "acc", "ccc".
    """
    batch_size, num_negatives = neg_attribute_embeds.shape[:2]
    expected = {
        "attribute_embeds": (attribute_embeds.shape, object_embeds.shape),
        "category_embeds": (category_embeds.shape, object_embeds.shape),
        "neg_category_embeds": (neg_category_embeds.shape, neg_attribute_embeds.shape),
    }
    for name, (shape, wanted) in expected.items():
        if shape != wanted:
            raise ValueError(f"{name} has shape {tuple(shape)}, expected {tuple(wanted)}.")
    if neg_attribute_embeds.shape[0] != object_embeds.shape[0]:
        raise ValueError(
            f"neg_attribute_embeds has {neg_attribute_embeds.shape[0]} rows, object_embeds {object_embeds.shape[0]}."
        )

    objects, attributes, categories = (
        F.normalize(x, dim=-1) for x in (object_embeds, attribute_embeds, category_embeds)
    )
    neg_attributes = F.normalize(neg_attribute_embeds, dim=-1)
    neg_categories = F.normalize(neg_category_embeds, dim=-1)

    if reproduce_released:
        return _released_losses(objects, attributes, categories, neg_attributes, neg_categories, temperature)

    (all_objects, all_attributes, all_categories), positives, in_batch = _batch_keys(
        (objects, attributes, categories), labels, gather_across_processes, same_class_masking
    )

    oa = torch.cat([in_batch(objects, all_attributes), _hard_negative_logits(objects, neg_attributes)], dim=1)
    ao = in_batch(attributes, all_objects)
    # Keys are category names: a same-class row's key is the positive's own text.
    ac_in_batch = in_batch(attributes, all_categories, duplicate_text=True)
    ac = torch.cat([ac_in_batch, _hard_negative_logits(attributes, neg_categories)], dim=1)
    ca = torch.cat([in_batch(categories, all_attributes), _hard_negative_logits(categories, neg_attributes)], dim=1)

    def nce(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits / temperature, positives)

    ccc = category_category_loss(categories, neg_categories, temperature, ccc_form)
    return {"oac": (nce(oa) + nce(ao)) / 2, "acc": (nce(ac) + nce(ca)) / 2, "ccc": ccc}


def object_category_losses(
    object_embeds: torch.Tensor,
    category_embeds: torch.Tensor,
    neg_category_embeds: torch.Tensor,
    temperature: float = 0.07,
    labels: torch.Tensor | None = None,
    *,
    gather_across_processes: bool = False,
    same_class_masking: SameClassMasking = "duplicate_text",
) -> dict[str, torch.Tensor]:
    """The "contrastive object-category" ablation (Table 3b): eq. 5 with category names in place of attribute
    descriptions and no attribute text anywhere. OC = (L_OC^hn + L_CO) / 2: object -> category over the batch plus
    the row's hard-negative category names C_hn^i, and category -> object over the batch. Same-class category
    names are the positive's own text and are masked in the object -> category term (with `labels`)."""
    if category_embeds.shape != object_embeds.shape or neg_category_embeds.shape[0] != object_embeds.shape[0]:
        raise ValueError(
            f"Shapes do not match: objects {tuple(object_embeds.shape)}, categories {tuple(category_embeds.shape)}, "
            f"negative categories {tuple(neg_category_embeds.shape)}."
        )
    objects, categories = F.normalize(object_embeds, dim=-1), F.normalize(category_embeds, dim=-1)
    neg_categories = F.normalize(neg_category_embeds, dim=-1)
    (all_objects, all_categories), positives, in_batch = _batch_keys(
        (objects, categories), labels, gather_across_processes, same_class_masking
    )
    oc = torch.cat(
        [in_batch(objects, all_categories, duplicate_text=True), _hard_negative_logits(objects, neg_categories)], dim=1
    )
    co = in_batch(categories, all_objects)
    oc_loss = F.cross_entropy(oc / temperature, positives)
    co_loss = F.cross_entropy(co / temperature, positives)
    return {"oc": (oc_loss + co_loss) / 2}


@torch.no_grad()
def in_batch_retrieval_accuracy(
    queries: torch.Tensor,
    keys: torch.Tensor,
    labels: torch.Tensor | None = None,
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Top-1 retrieval accuracy of queries[i] among the batch's keys and, when given, its own (B, K, D) hard
    negatives: right when the best key is row i, or, with labels, any row of the same class (same-class rows share a
    category name); a hard negative (another category) is always wrong."""
    queries, keys = F.normalize(queries, dim=-1), F.normalize(keys, dim=-1)
    scores = queries @ keys.T
    if negatives is not None:
        scores = torch.cat([scores, _hard_negative_logits(queries, F.normalize(negatives, dim=-1))], dim=1)
    best = scores.argmax(dim=1)
    rows = torch.arange(len(queries), device=queries.device)
    in_batch = best < len(keys)
    hit = best == rows if labels is None else labels[best.clamp(max=len(keys) - 1)] == labels
    return (in_batch & hit).float().mean()


# The embedding pairs stage I aligns, by objective: (name, query, key, the key's hard negatives), fields of
# `ContrastiveAlignmentOutput`.
ALIGNED_PAIRS = {
    "attribute_augmented": (
        ("object_to_attribute", "object_embeds", "attribute_embeds", "neg_attribute_embeds"),
        ("attribute_to_category", "attribute_embeds", "category_embeds", "neg_category_embeds"),
        ("object_to_category", "object_embeds", "category_embeds", "neg_category_embeds"),
    ),
    "object_category": (("object_to_category", "object_embeds", "category_embeds", "neg_category_embeds"),),
}


@torch.no_grad()
def alignment_metrics(
    outputs: Any, objective: Objective, labels: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Whether a stage I batch is aligning, beside its losses: for each pair the objective aligns, the top-1
    retrieval among the batch's keys and the row's hard negatives (`accuracy_<pair>`), and the mean cosine of each
    row to its positive and to its hard negatives (`cosine_positive_<pair>`, `cosine_negative_<pair>`). A loss can
    fall while retrieval stays at chance; retrieval can rise while positives and negatives stay close."""
    metrics = {}
    for name, query_field, key_field, negatives_field in ALIGNED_PAIRS[objective]:
        queries, keys, negatives = (getattr(outputs, f) for f in (query_field, key_field, negatives_field))
        metrics[f"accuracy_{name}"] = in_batch_retrieval_accuracy(queries, keys, labels, negatives)
        queries, keys, negatives = (F.normalize(x.float(), dim=-1) for x in (queries, keys, negatives))
        metrics[f"cosine_positive_{name}"] = (queries * keys).sum(-1).mean()
        metrics[f"cosine_negative_{name}"] = _hard_negative_logits(queries, negatives).mean()
    return metrics


class AttributeAugmentedContrastiveLoss(nn.Module):
    """Attribute augmented contrastive loss of Finedefics (stage I): weighted OAC + ACC + CCC.

    Binds visual objects to category names through attribute descriptions in the LLM's representation
    space, with hard negatives from the most similar incorrect categories. See
    `attribute_augmented_losses` for the terms.

    Inputs:
        +---------------------------+--------------------------------------------+
        | Texts / embeddings        | Shape                                      |
        +===========================+============================================+
        | object_embeds             | (B, D)                                     |
        | attribute_embeds          | (B, D)                                     |
        | category_embeds           | (B, D)                                     |
        | neg_attribute_embeds      | (B, K, D), row i's own K hard negatives    |
        | neg_category_embeds       | (B, K, D), row i's own K hard negatives    |
        | labels (optional)         | (B,) class ids                             |
        +---------------------------+--------------------------------------------+

    Returns the weighted sum of the contrastive terms and the unweighted terms. The settings (temperature,
    weights, masking, released mode) come from an [`AttributeAugmentedLossConfig`]; keyword arguments override
    single fields, e.g. `AttributeAugmentedContrastiveLoss(temperature=1.0)`.

    Citation: see `citation` (He et al., ICLR 2025).
    """

    citation = FINEDEFICS_CITATION

    def __init__(self, config: AttributeAugmentedLossConfig | None = None, **overrides: Any):
        super().__init__()
        self.config = dataclasses.replace((config or AttributeAugmentedLossConfig()).loss_config(), **overrides)
        self.weights = {
            "oac": self.config.oac_weight,
            "acc": self.config.acc_weight,
            "ccc": self.config.ccc_weight,
            "oc": self.config.oc_weight,
        }

    @property
    def gather_across_processes(self) -> bool:
        return self.config.gather_across_processes

    def get_config_dict(self) -> dict[str, Any]:
        return self.config.get_config_dict()

    def forward(
        self,
        object_embeds: torch.Tensor,
        attribute_embeds: torch.Tensor,
        category_embeds: torch.Tensor,
        neg_attribute_embeds: torch.Tensor,
        neg_category_embeds: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.config.objective == "object_category":
            terms = object_category_losses(
                object_embeds,
                category_embeds,
                neg_category_embeds,
                temperature=self.config.temperature,
                labels=labels,
                gather_across_processes=self.config.gather_across_processes,
                same_class_masking=self.config.same_class_masking,
            )
            return self.weights["oc"] * terms["oc"], terms
        terms = attribute_augmented_losses(
            object_embeds,
            attribute_embeds,
            category_embeds,
            neg_attribute_embeds,
            neg_category_embeds,
            temperature=self.config.temperature,
            labels=labels,
            gather_across_processes=self.config.gather_across_processes,
            reproduce_released=self.config.reproduce_released_losses,
            same_class_masking=self.config.same_class_masking,
            ccc_form=self.config.ccc_form,
        )
        total = sum(self.weights[name] * terms[name] for name in LOSS_TERMS)
        return total, terms
