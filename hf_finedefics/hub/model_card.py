"""The Finedefics model card: what was trained, how, on what, how well, and how to load it.

One card for both ways of publishing (`upload`): built from a live trainer (`FinedeficsModelCardMixin`) or from a
finished adapter folder and its training summary (`push_adapter`). The card is published, so it never names a local
path (a local base, data folder or stage I adapter).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData, try_to_load_from_cache
from peft import PeftConfig

from dataset_builders.publish import is_hub_id, public_name

from ..evaluation.items import DATASETS
from ..losses import FINEDEFICS_CITATION
from ..training_summary import STAGE_TAGS, framework_versions

logger = logging.getLogger(__name__)

AUTHORS_CODE_URL = "https://github.com/PKU-ICST-MIPL/Finedefics-ICLR2025"
CARD_TAGS = ["finedefics", "fgvr", "fine-grained-visual-recognition", "lora"]
# What TRL's own card adds for the trainer of each stage (stage II is TRL's SFTTrainer).
TRAINER_TAGS = {
    "stage1": ["generated_from_trainer"],
    "stage2": ["generated_from_trainer", "trl", "sft"],
    "stage3": ["generated_from_trainer", "trl", "grpo"],
}
MODEL_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A {{ kind }} for `{{ base_model_name }}` trained with hf-finedefics ({{ what }}), the method of "Analyzing and \
Boosting the Power of Fine-Grained Visual Recognition for Multi-modal Large Language Models" (Finedefics, ICLR 2025; \
[authors' code]({{ code_url }})).

## Usage

{{ usage }}
{% if training_data %}
## Training data

{% for name in training_data %}- `{{ name }}`
{% endfor %}{% endif %}{% if hyperparameters %}
## Training hyper-parameters

| Setting | Value |
|---|---|
{% for name, value in hyperparameters.items() %}| {{ name }} | {{ value }} |
{% endfor %}{% endif %}{% if evaluation_table %}
## Evaluation

Multiple-choice fine-grained visual recognition accuracy (%), the paper's Table 2 protocol (`finedefics evaluate`):

{{ evaluation_table }}
{% endif %}
## Framework versions

{% for name, number in framework_versions.items() %}- {{ name }}: {{ number }}
{% endfor %}
## Citation

```bibtex
{{ citation }}
```
"""
STAGE_DESCRIPTIONS = {
    "stage1": "stage I, attribute augmented contrastive learning: the generation loss on attribute descriptions "
    "plus object-attribute, attribute-category and category-category contrastive losses with hard negatives "
    "(the paper's eq. 8)",
    "stage2": "stage II, classification-centred instruction tuning on open-set and multiple-choice questions "
    "(the paper's eq. 9)",
    "stage3": "stage III, reinforcement fine-tuning with GRPO, rewarding correct multiple-choice and open-set answers",
}


def hyperparameters(
    peft_config: PeftConfig | None, training: dict[str, Any] | None = None, quantization: str | None = None
) -> dict[str, Any]:
    """The settings a reader needs to reproduce the run, in the order the card lists them: quantization, LoRA,
    then the `training_hyperparameters`."""
    table: dict[str, Any] = {}
    if quantization is not None:
        table["quantization"] = quantization
    if peft_config is not None:
        target_modules = peft_config.target_modules
        if not isinstance(target_modules, str) and target_modules is not None:
            target_modules = ", ".join(sorted(target_modules))
        table |= {
            "LoRA rank": peft_config.r,
            "LoRA alpha": peft_config.lora_alpha,
            "LoRA dropout": peft_config.lora_dropout,
            "LoRA init": peft_config.init_lora_weights,
            "LoRA target modules": f"`{target_modules}`",
        }
    return table | (training or {})


def evaluation_results(report: dict[str, Any], model: str | None = None) -> list[EvalResult] | None:
    """The accuracies of `model` in an evaluation `report.json` as model-index results (one per dataset and
    scorer); `model` may be left out when the report holds one model. None when the report has no such model."""
    models = {row["model"] for row in report["rows"]}
    if model is None and len(models) == 1:
        model = models.pop()
    rows = [row for row in report["rows"] if row["model"] == model]
    if not rows:
        logger.warning(
            "The evaluation report holds models %s: name the one this card is for (--eval_model) to add its results "
            "to the card's metadata.",
            sorted({row["model"] for row in report["rows"]}),
        )
        return None
    return [
        EvalResult(
            task_type="image-classification",
            task_name="Fine-grained visual recognition (4-way multiple choice)",
            dataset_type=name,
            dataset_name=DATASETS[name].display_name if name in DATASETS else name,
            dataset_split="test",
            metric_type="accuracy",
            metric_name=f"Accuracy ({row['scorer']})",
            metric_value=summary["accuracy"],
        )
        for row in rows
        for name, summary in row["datasets"].items()
    ]


def evaluation_table(report: dict[str, Any]) -> str:
    """The accuracy table (%) of an evaluation `report.json` (`finedefics evaluate`), as markdown."""
    names = report["datasets"]
    titles = [DATASETS[name].display_name if name in DATASETS else name for name in names]
    lines = [
        "| Model | Scorer | " + " | ".join(titles) + " | Avg. |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for row in report["rows"]:
        cells = [f"{row['datasets'][name]['accuracy']:.2f}" if name in row["datasets"] else "–" for name in names]
        average = "–" if row["average_accuracy"] is None else f"{row['average_accuracy']:.2f}"
        lines.append(f"| {row['model']} | {row['scorer']} | " + " | ".join(cells) + f" | {average} |")
    return "\n".join(lines)


@dataclass
class AdapterCardInfo:
    """What a Finedefics model card says. `base_model` is the model the adapter goes on (its
    `base_model_name_or_path`); a local folder is named in the text but not linked as the card's base model."""

    model_name: str
    base_model: str | None
    repo_id: str | None = None
    peft_config: PeftConfig | None = None
    stage: str | None = None
    training: dict[str, Any] = field(default_factory=dict)  # `training_hyperparameters`
    datasets: list[str] = field(default_factory=list)
    evaluation_report: dict[str, Any] | None = None
    quantization: str | None = None
    tags: list[str] = field(default_factory=list)
    license: str | None = None
    evaluation_model: str | None = None  # the row name of this model in `evaluation_report`
    framework_versions: dict[str, str] | None = None  # as trained (`training_summary`), else the versions now
    stages: dict[str, str] | None = None  # a stage II repo's `STAGES_NAME`: where the parts of its base are


def base_model_license(base_model: str | None) -> str | None:
    """The license on the card of `base_model` when it is a Hub model whose card is in the local Hub cache (as
    loading it leaves it), else None: an adapter inherits its base's license unless told otherwise."""
    if not is_hub_id(base_model):
        return None
    card = try_to_load_from_cache(base_model, "README.md")
    return ModelCard.load(card).data.license if isinstance(card, str) else None


def _stages_usage(stages: dict[str, str], base_model: str | None) -> str:
    if "merged_base" in stages:
        base = f"`{base_model}`" if is_hub_id(base_model) else "the original base"
        return (
            f"The base it was trained on ({base} with the stage I adapter merged in) is in "
            f"`{stages['merged_base']}/`; loading puts this adapter on it:"
        )
    return (
        f"The stage I adapter is in `{stages['stage1_adapter']}/`; loading merges it into `{base_model}` (stage II "
        "was trained on that merge), then puts this adapter on top (plain peft loading would skip stage I):"
    )


def _usage(info: AdapterCardInfo) -> str:
    if info.repo_id is not None and (is_hub_id(info.base_model) or info.stages is not None):
        load = (
            "```python\nfrom hf_finedefics.modeling import load_finedefics_model\n\n"
            f'model, processor = load_finedefics_model("{info.repo_id}")'
            + (f"  # loads {info.base_model} under it" if info.stages is None else "")
            + "\n```"
        )
        return load if info.stages is None else f"{_stages_usage(info.stages, info.base_model)}\n\n{load}"
    adapter = info.repo_id or "<this adapter>"
    return (
        "The adapter was trained on a local model; load it on that model, or on its published copy:\n\n"
        "```python\nfrom hf_finedefics.modeling import load_finedefics_model\n\n"
        f'model, processor = load_finedefics_model("<base model>", adapter="{adapter}")\n```'
    )


def build_model_card(info: AdapterCardInfo) -> ModelCard:
    """A model card with Hub metadata (license, base model, peft, datasets, tags with TRL's, pipeline, the
    evaluation as model-index results) and a body giving the training stage, the hyper-parameters, the evaluation
    table when known, how to load the adapter, the framework versions and the citation. Local paths (a local base,
    data folder or stage I adapter) are not named: the card is published."""
    stage = info.stage
    tags = [*CARD_TAGS, *([STAGE_TAGS[stage]] if stage else []), *TRAINER_TAGS.get(stage, []), *info.tags]
    report = info.evaluation_report
    card_data = ModelCardData(
        license=info.license,
        base_model=info.base_model if is_hub_id(info.base_model) else None,
        datasets=[name for name in info.datasets if is_hub_id(name)] or None,
        library_name="peft" if info.peft_config is not None else "transformers",
        pipeline_tag="image-text-to-text",
        tags=list(dict.fromkeys(tags)),
        model_name=info.model_name,
        eval_results=evaluation_results(report, info.evaluation_model) if report is not None else None,
    )
    what = STAGE_DESCRIPTIONS[stage] if stage else "Finedefics training"
    table = hyperparameters(info.peft_config, info.training, info.quantization)
    return ModelCard.from_template(
        card_data,
        template_str=MODEL_CARD_TEMPLATE,
        kind="LoRA adapter" if info.peft_config is not None else "model",
        base_model_name=public_name(str(info.base_model)),
        what=what,
        code_url=AUTHORS_CODE_URL,
        usage=_usage(info),
        training_data=[public_name(name) for name in info.datasets],
        hyperparameters={
            name: public_name(value) if isinstance(value, str) else value for name, value in table.items()
        },
        evaluation_table=evaluation_table(report) if report is not None else None,
        framework_versions=info.framework_versions or framework_versions(),
        citation=FINEDEFICS_CITATION,
    )
