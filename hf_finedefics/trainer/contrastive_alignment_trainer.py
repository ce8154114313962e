"""Stage I of Finedefics: attribute augmented contrastive learning (paper section 3.2, eq. 5-8)."""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict
from pathlib import Path

import datasets
import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from torch import nn
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedModel,
    ProcessorMixin,
    Trainer,
    set_seed,
)
from transformers.modeling_utils import is_fsdp_enabled
from transformers.trainer import TRAINING_ARGS_NAME

from ..backbones import get_backbone
from ..collators import ContrastiveAlignmentCollator, validate_triples
from ..hub import FinedeficsModelCardMixin
from ..losses import AttributeAugmentedContrastiveLoss, alignment_metrics
from ..objectives import ContrastiveAlignmentModel, cached_stage1_objective, stage1_objective
from ..training_summary import TRAINING_SUMMARY_NAME
from .checkpoints import train_and_save
from .contrastive_alignment_config import ContrastiveAlignmentConfig
from .model_config import FinedeficsModelConfig


class ContrastiveAlignmentTrainer(FinedeficsModelCardMixin, Trainer):
    """Trainer for Finedefics stage I: `L_G^att + (L_OAC + L_ACC + L_CCC) / 2` (eq. 8).

    Args:
        model: a model id / path (loaded with `AutoModelForImageTextToText`) or a loaded VLM, possibly
            quantized or already a `PeftModel`.
        args: a [`ContrastiveAlignmentConfig`].
        train_dataset / eval_dataset: rows with `image`, `attribute`, `category`, `neg_attributes`,
            `neg_categories` and optionally `label`, `superclass` (the `triples` config built by
            `dataset_builders`). Every row is validated before training.
        processing_class: the model's processor; loaded from `model` when omitted.
        peft_config: LoRA configuration; `get_backbone(model).lora_config()` gives the paper's.

    Logs each term (`loss_gen`, `loss_oac`, `loss_acc`, `loss_ccc`; `loss_oc` for the object-category ablation) and,
    for each pair the objective aligns (object->attribute, attribute->category, object->category; only the last for
    the ablation), the top-1 retrieval among the batch and the row's hard negatives (`accuracy_<pair>`) and the mean
    cosine to positives and to hard negatives (`cosine_positive_<pair>`, `cosine_negative_<pair>`), in training and
    evaluation (`losses.alignment_metrics`). With `args.log_term_gradient_norms`, also each weighted term's gradient
    norm on the trained parameters (`grad_norm_<term>`, one extra backward pass per term). With
    `ccc_form="literal"`, `loss_ccc` goes negative by design (eq. 7 as printed has no positive term).

    With `args.contrastive_mini_batch_size` set, each step uses gradient caching (`cached_stage1_objective`): the
    backward passes run inside `training_step`, one per mini-batch.
    """

    _tag_names = ["finedefics", "stage1", "contrastive-alignment"]

    def __init__(
        self,
        model: str | PreTrainedModel | PeftModel,
        args: ContrastiveAlignmentConfig | None = None,
        data_collator=None,
        train_dataset: datasets.Dataset | None = None,
        eval_dataset: datasets.Dataset | None = None,
        processing_class: ProcessorMixin | None = None,
        peft_config: LoraConfig | None = None,
        callbacks=None,
        optimizers=(None, None),
    ):
        args = args or ContrastiveAlignmentConfig(output_dir="finedefics-stage1")
        # `get_peft_model` draws the LoRA weights before `Trainer.__init__` seeds: seed first (as TRL's SFTTrainer
        # does for stage II), so that two runs with the same seed start from the same adapter.
        set_seed(args.seed)
        if isinstance(model, str):
            model_id = model
            model = AutoModelForImageTextToText.from_pretrained(model_id, **(args.model_init_kwargs or {}))
        else:
            model_id = model.config._name_or_path
        processing_class = processing_class or AutoProcessor.from_pretrained(model_id)
        backbone = get_backbone(model)

        if peft_config is not None:
            if isinstance(model, PeftModel):
                raise ValueError("The model is already a PeftModel; pass peft_config=None to keep its adapter.")
            if getattr(model, "is_loaded_in_4bit", False) and (is_fsdp_enabled() or args.fsdp):
                # FSDP-QLoRA: FSDP flattens weights of one dtype, so the others must not be upcast to float32 (the
                # 4-bit ones are stored in the compute dtype, see recipes/accelerate_configs/fsdp_qlora.yaml).
                if args.activation_checkpointing:
                    model.activation_checkpointing_enable(args.activation_checkpointing_kwargs)
            elif getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
                model = prepare_model_for_kbit_training(
                    model,
                    use_gradient_checkpointing=args.activation_checkpointing,
                    gradient_checkpointing_kwargs=args.activation_checkpointing_kwargs,
                )
            model = get_peft_model(model, peft_config)
        elif not isinstance(model, PeftModel):
            backbone.freeze_vision_encoder()
        if args.activation_checkpointing:
            # Inputs of a frozen embedding layer do not require grad; checkpointed blocks need one that does.
            backbone.model.enable_input_require_grads()

        for name, dataset in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            if dataset is not None:
                validate_triples(dataset, name, check_images=args.validate_images, objective=args.objective)

        data_collator = data_collator or ContrastiveAlignmentCollator(
            processing_class,
            eos_token_id=backbone.eos_token_id,
            instruction=args.generation_instruction,
            max_text_length=args.max_text_length,
            loss_on_all_tokens=args.generation_loss_on_all_tokens,
            objective=args.objective,
        )
        super().__init__(
            model=ContrastiveAlignmentModel(model),
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        # compute_loss returns a per-batch mean; the Trainer scales it for gradient accumulation.
        self.model_accepts_loss_kwargs = False
        self.contrastive_loss = AttributeAugmentedContrastiveLoss(args.loss_config())
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
        if args.contrastive_mini_batch_size is not None and args.log_term_gradient_norms:
            raise ValueError(
                "log_term_gradient_norms needs the plain step; gradient caching (contrastive_mini_batch_size) runs "
                "its backward passes itself."
            )
        if args.contrastive_mini_batch_size is not None and self.is_deepspeed_enabled:
            raise ValueError(
                "contrastive_mini_batch_size (gradient caching) runs several backward passes per step, which "
                "DeepSpeed's engine does not allow; use DDP or FSDP (recipes/accelerate_configs/)."
            )

    def _cached_backward(self, loss: torch.Tensor) -> None:
        # What Trainer.training_step does with the loss it gets back from compute_loss.
        self.accelerator.backward(loss / getattr(self, "current_gradient_accumulation_steps", 1))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        if self.args.contrastive_mini_batch_size is None:
            loss, terms, outputs = stage1_objective(model, inputs, self.contrastive_loss)
        else:
            training = model.training and torch.is_grad_enabled()
            loss, terms, outputs = cached_stage1_objective(
                model,
                inputs,
                self.contrastive_loss,
                self.args.contrastive_mini_batch_size,
                backward=self._cached_backward if training else None,
                no_sync=functools.partial(self.accelerator.no_sync, model),
            )
        gradient_norms = {}
        if self.args.log_term_gradient_norms and model.training and torch.is_grad_enabled():
            gradient_norms = self._term_gradient_norms(model, terms)
        with torch.no_grad():
            metrics = {f"loss_{name}": value.detach() for name, value in terms.items()}
            metrics |= alignment_metrics(outputs, self.args.objective, inputs.get("class_labels"))
            metrics |= gradient_norms
            values = self.accelerator.gather_for_metrics(torch.stack(list(metrics.values()))[None])
            for name, value in zip(metrics, values.float().mean(0).tolist()):
                self._metrics[mode][name].append(value)
        return (loss, outputs) if return_outputs else loss

    def _term_gradient_norms(self, model: nn.Module, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each weighted term's gradient norm on the trained parameters: which term drives the step."""
        parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        config = self.contrastive_loss.config
        weights = {"gen": config.generation_loss_weight, **self.contrastive_loss.weights}
        norms = {}
        for name, term in terms.items():
            if not term.requires_grad:
                continue
            gradients = torch.autograd.grad(weights[name] * term, parameters, retain_graph=True, allow_unused=True)
            squares = [gradient.float().pow(2).sum() for gradient in gradients if gradient is not None]
            norms[f"grad_norm_{name}"] = torch.stack(squares).sum().sqrt() if squares else term.new_zeros(())
        return norms

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.args.contrastive_mini_batch_size is None:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        with self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)  # runs the backward passes (gradient caching)
        # Trainer adds up the returned losses of a step's accumulated batches.
        return loss / getattr(self, "current_gradient_accumulation_steps", 1)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = self.compute_loss(model, self._prepare_inputs(inputs))
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = {name: sum(values) / len(values) for name, values in self._metrics[mode].items() if values}
        if mode == "eval":
            metrics = {f"eval_{name}": value for name, value in metrics.items()}
        super().log({**logs, **metrics}, start_time)
        self._metrics[mode].clear()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if not _internal_call and self.args.should_save:
            self._record_alignment(Path(output_dir or self.args.output_dir))

    def _record_alignment(self, folder: Path) -> None:
        """Add to the final save's training summary where stage I ended: the last logged window's losses, retrievals
        and cosines (checkpoints keep the plain summary, which resuming compares)."""
        logged = [entry for entry in self.state.log_history if "loss" in entry]
        summary_path = folder / TRAINING_SUMMARY_NAME
        if not logged or not summary_path.is_file():
            return
        prefixes = ("loss_", "accuracy_", "cosine_")
        alignment = {"step": logged[-1]["step"]}
        alignment |= {key: value for key, value in logged[-1].items() if key.startswith(prefixes)}
        summary = json.loads(summary_path.read_text(encoding="utf-8")) | {"alignment": alignment}
        temporary = summary_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, summary_path)

    # The Trainer's model is the stage I wrapper; checkpoints hold the inner (peft) model so that they are
    # ordinary adapter / model folders that `from_pretrained` loads.
    def _inner_model(self) -> PreTrainedModel | PeftModel:
        return self.accelerator.unwrap_model(self.model).model

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        if state_dict is not None:
            prefix = "model."
            state_dict = {key.removeprefix(prefix): value for key, value in state_dict.items()}
        self._inner_model().save_pretrained(output_dir, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model=model or self._inner_model())

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)


def train_stage1(
    model_args: FinedeficsModelConfig,
    training_args: ContrastiveAlignmentConfig,
    train_dataset: datasets.Dataset,
    eval_dataset: datasets.Dataset | None = None,
    dataset_name: str | None = None,
) -> str:
    """Run stage I from `model_args` and save the adapter (or model) with its processor to `output_dir`, or push
    it to the Hub when `push_to_hub` is set; returns `output_dir`."""

    def build_trainer() -> ContrastiveAlignmentTrainer:
        model, processor = model_args.load(is_trainable=True)
        return ContrastiveAlignmentTrainer(
            model,
            training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processor,
            peft_config=model_args.lora_config(model) if model_args.use_peft else None,
        )

    return str(train_and_save(build_trainer, training_args, train_dataset, dataset_name))
