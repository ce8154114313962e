"""Publishing Finedefics adapters to the Hub: one upload of an allow-list of files with the card (`model_card`).

Two ways in, one card:

- `push_adapter(folder, repo_id)` (`finedefics push-adapter`) publishes a finished adapter folder; the card is
  built from its `adapter_config.json`, the `finedefics_training.json` the trainers write beside every save and,
  if given, an evaluation `report.json`. The Trainer's `training_args.bin` is a pickle, which can run code when
  loaded, so a folder someone else made is never unpickled.
- `push_to_hub: true` in a recipe: the trainers' `create_model_card` (see `FinedeficsModelCardMixin`) writes the
  same card from the live trainer, and the trainers' `push_to_hub` uploads the output folder.

Both upload only the `PUBLISHED_FILES` (an allow-list), staged in a temporary folder: what a run writes besides the
model (training_args.bin with the Hub token and local paths, fingerprints, logs, checkpoints) never leaves the
machine, nor does the card or adapter_config.json name a local path.

A stage II adapter is trained on a local base, the original base with the stage I adapter merged in. Pushing it
uploads what rebuilding that base needs in a subfolder of the same repo: the stage I adapter (`stage1/`, small) by
default, or the merged base itself (`stage1-merged/`, a full model) when asked; `STAGES_NAME` says which.

Loading a published adapter is one call: `hf_finedefics.modeling.load_finedefics_model(repo_id)`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard, snapshot_download
from peft import PeftConfig, PeftModel
from transformers import TrainingArguments
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import HubStrategy

from dataset_builders.publish import is_hub_id

from ..modeling import (
    ADAPTER_CONFIG_NAME,
    MERGE_DONE_NAME,
    STAGES_NAME,
    adapter_base_model,
    is_complete_merge,
    record_relative_base_model,
)
from ..training_summary import (
    TRAINING_SUMMARY_NAME,
    load_training_summary,
    training_hyperparameters,
    training_stage,
    training_summary,
)
from .model_card import AdapterCardInfo, base_model_license, build_model_card

# The top-level files that loading a published adapter (or model) needs, and nothing else (the card is written
# apart, see `upload_published_files`).
PUBLISHED_FILES = (
    ADAPTER_CONFIG_NAME,
    "adapter_model.safetensors",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)
# Where a pushed stage II repo keeps the parts of its base (see `STAGES_NAME`).
STAGE1_SUBFOLDER = "stage1"
MERGED_BASE_SUBFOLDER = "stage1-merged"


def without_credentials(training_args: TrainingArguments) -> TrainingArguments:
    """A copy of `training_args` with its credentials (the `*_token` fields, which `TrainingArguments.to_dict` masks
    too) unset, to pickle into training_args.bin."""
    public = copy.copy(training_args)
    for spec in dataclasses.fields(public):
        if spec.name.endswith("_token"):
            setattr(public, spec.name, None)
    return public


class FinedeficsModelCardMixin:
    """Makes a Trainer write the Finedefics model card and publish safely: put it before the Trainer class,
    `class MyTrainer(FinedeficsModelCardMixin, Trainer)`. `push_to_hub` (and TRL's checkpoint saving) call
    `create_model_card`, so `push_to_hub: true` uploads this card with the adapter, and every push (final and per
    checkpoint) uploads only the `PUBLISHED_FILES` (`upload_published_files`). Every save (final and checkpoints)
    also writes the `training_summary` as JSON, which `push_adapter` reads instead of the pickle, and keeps the Hub
    token out of training_args.bin."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            folder = Path(output_dir or self.args.output_dir)
            if (folder / TRAINING_ARGS_NAME).is_file():
                torch.save(without_credentials(self.args), folder / TRAINING_ARGS_NAME)
            # A base beside the output folder (stage II's merged base) is recorded relative to the save, so a run
            # folder moved as a whole still loads; the summary is written last (it marks a finished save).
            record_relative_base_model(folder, Path(self.args.output_dir).resolve().parent)
            path = folder / TRAINING_SUMMARY_NAME
            path.write_text(json.dumps(training_summary(self.args), indent=2) + "\n", encoding="utf-8")

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.is_world_process_zero():
            return
        args: TrainingArguments = self.args
        unwrapped = self.accelerator.unwrap_model(self.model)
        # The stage I trainer wraps the VLM; the adapter is the first PeftModel inside whatever the Trainer holds.
        peft_model = next((module for module in unwrapped.modules() if isinstance(module, PeftModel)), None)
        peft_config = peft_model.peft_config[peft_model.active_adapter] if peft_model is not None else None
        base_model = peft_config.base_model_name_or_path if peft_config is not None else unwrapped.config._name_or_path
        datasets = [dataset_name] if isinstance(dataset_name, str) else list(dataset_name or [])
        info = AdapterCardInfo(
            model_name=model_name or Path(args.output_dir).name,
            base_model=base_model,
            repo_id=self.hub_model_id,
            peft_config=peft_config,
            stage=training_stage(args),
            training=training_hyperparameters(args),
            datasets=datasets,
            quantization="4-bit NF4 (QLoRA)" if getattr(peft_model or unwrapped, "is_loaded_in_4bit", False) else None,
            # the trainer's own tags (TRL's trainers add theirs this way) beside those asked for
            tags=[*getattr(self, "_tag_names", []), *([tags] if isinstance(tags, str) else list(tags or []))],
            license=kwargs.get("license") or base_model_license(base_model),
        )
        os.makedirs(args.output_dir, exist_ok=True)
        build_model_card(info).save(os.path.join(args.output_dir, "README.md"))

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> CommitInfo | None:
        """`Trainer.push_to_hub` (save, card, one upload), uploading only the `PUBLISHED_FILES` and waiting for it:
        the Trainer's own upload sends the whole output folder."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        self.create_model_card(model_name=kwargs.pop("model_name", self.hub_model_id.split("/")[-1]), **kwargs)
        self._finish_current_push()
        return self._upload(self.args.output_dir, commit_message, token, revision or self.args.hub_revision)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """Pushing a checkpoint uploads its `PUBLISHED_FILES` with the card, never the checkpoint folder itself
        (optimizer state, training_args.bin), and waits for the upload."""
        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        self.create_model_card(model_name=self.hub_model_id.split("/")[-1])
        message = f"Training in progress, step {self.state.global_step}"
        self._upload(checkpoint_folder, message, self.args.hub_token, self.args.hub_revision)

    def _upload(self, folder: str, commit_message: str | None, token: str | None, revision: str | None) -> CommitInfo:
        base_model = PeftConfig.from_pretrained(folder).base_model_name_or_path if _is_adapter(folder) else None
        return upload_published_files(
            folder,
            self.hub_model_id,
            card=ModelCard.load(Path(self.args.output_dir) / "README.md"),
            base_model=base_model if is_hub_id(base_model) else None,
            token=token,
            revision=revision,
            commit_message=commit_message,
        )


def _is_adapter(folder: str | os.PathLike) -> bool:
    return (Path(folder) / ADAPTER_CONFIG_NAME).is_file()


def _stage_published_files(folder: str | os.PathLike, staging: Path, base_model: str | None) -> None:
    """Copy the `PUBLISHED_FILES` of `folder` (top level only) into `staging`, an adapter's `adapter_config.json`
    made to name `base_model`."""
    staging.mkdir(parents=True, exist_ok=True)
    for path in Path(folder).iterdir():
        if path.is_file() and any(fnmatch(path.name, pattern) for pattern in PUBLISHED_FILES):
            shutil.copyfile(path, staging / path.name)
    if _is_adapter(staging):
        config = json.loads((staging / ADAPTER_CONFIG_NAME).read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_model
        (staging / ADAPTER_CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def upload_published_files(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    card: ModelCard,
    base_model: str | None,
    token: str | None,
    revision: str | None,
    commit_message: str | None,
    parts: dict[str, Path] | None = None,
    stages: dict[str, str] | None = None,
) -> CommitInfo:
    """Upload the `PUBLISHED_FILES` of `folder` (top level only) with `card` as README.md to the model repo
    `repo_id`, and those of each of `parts` ({subfolder: folder}) into that subfolder, with `stages` as
    `STAGES_NAME` when given. They are staged in a temporary folder, where each adapter's `adapter_config.json` is
    made to name `base_model` (a Hub id, or None for a local base nobody else can load): no folder is changed."""
    with tempfile.TemporaryDirectory(prefix="finedefics-upload-") as staging:
        staging = Path(staging)
        _stage_published_files(folder, staging, base_model)
        for subfolder, part in (parts or {}).items():
            _stage_published_files(part, staging / subfolder, base_model)
        if stages is not None:
            (staging / STAGES_NAME).write_text(json.dumps(stages, indent=2) + "\n", encoding="utf-8")
        card.save(staging / "README.md")
        return HfApi(token=token).upload_folder(
            repo_id=repo_id, folder_path=staging, commit_message=commit_message, revision=revision
        )


def stage1_merge_record(adapter_dir: str | os.PathLike) -> dict[str, str] | None:
    """What the base of the adapter in `adapter_dir` was merged from ({"adapter": stage I adapter, "base_model":
    its base}, as `merge_adapter` records them) when that base is a local merge, as stage II's is; else None."""
    base = adapter_base_model(adapter_dir)
    if base is None or not Path(base).is_dir() or not is_complete_merge(base):
        return None
    return json.loads((Path(base) / MERGE_DONE_NAME).read_text(encoding="utf-8"))


def _adapter_folder(adapter: str | os.PathLike) -> Path:
    """A local folder holding `adapter` (a folder, or a Hub id, fetched)."""
    if Path(adapter).is_dir() or not is_hub_id(str(adapter)):
        folder = Path(adapter)
    else:
        folder = Path(snapshot_download(str(adapter)))
    if not _is_adapter(folder):
        raise FileNotFoundError(
            f"The stage I adapter {adapter} (recorded by the stage II base's merge) has no {ADAPTER_CONFIG_NAME}: "
            "pass --stage1_adapter with its folder or Hub id."
        )
    return folder


def push_adapter(
    adapter_dir: str | os.PathLike,
    repo_id: str,
    *,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    evaluation_report: str | os.PathLike | None = None,
    evaluation_model: str | None = None,
    license: str | None = None,
    stage1_adapter: str | os.PathLike | None = None,
    upload_merged_base: bool = False,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Upload Finedefics adapter",
) -> str:
    """Upload the adapter in `adapter_dir` with a model card to `repo_id`: only the `PUBLISHED_FILES`, staged in a
    temporary folder (`upload_published_files`), so `adapter_dir` is left exactly as it was.

    A stage II adapter, whose base is the local merge of the stage I adapter into the original base
    (`stage1_merge_record`), is uploaded with the stage I adapter in `STAGE1_SUBFOLDER`, or with the merged base in
    `MERGED_BASE_SUBFOLDER` when `upload_merged_base`: `load_finedefics_model(repo_id)` rebuilds the base from it.

    Args:
        adapter_dir: a peft adapter folder (as `finedefics stage1` / `stage2` save them).
        repo_id: the Hub model repository, created if missing.
        base_model: Hub id of the model the adapter goes on, when the folder records a local one; for a stage II
            adapter, of the original base (the stage I merge's, when its record names a Hub id already). The uploaded
            `adapter_config.json` files name it, so `load_finedefics_model(repo_id)` finds it.
        datasets: Hub ids (or names) of the training data, listed on the card.
        evaluation_report: a `report.json` written by `finedefics evaluate`; its accuracy table goes on the card,
            and this model's accuracies into its metadata (model-index).
        evaluation_model: the report's name of this model, when the report holds several.
        license: the card's license (a Hub license id); default: the base model's, when its card is cached here.
        stage1_adapter: folder or Hub id of a stage II adapter's stage I adapter, when the merge's record of it is
            out of date (the folder moved).
        upload_merged_base: for a stage II adapter, upload its merged base (a full model) instead of the stage I
            adapter: loading then downloads more but merges nothing.
        private / revision / token: as for `HfApi.create_repo` / `upload_folder` (`revision`: an existing branch).

    Returns:
        The URL of the commit.
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / ADAPTER_CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{adapter_dir} has no {ADAPTER_CONFIG_NAME}: it is not a peft adapter folder.")
    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    parts, stages = _stage2_parts(adapter_dir, stage1_adapter, upload_merged_base)
    if stages is not None:
        merged_from = stage1_merge_record(adapter_dir)["base_model"]
        base_model = base_model or (merged_from if is_hub_id(merged_from) else None)
        if base_model is None and not upload_merged_base:
            raise ValueError(
                f"The stage I adapter of this stage II adapter was merged into the local folder {merged_from!r}, "
                "which nobody else can load: pass --model_name_or_path with the Hub id of that model."
            )
        peft_config.base_model_name_or_path = base_model
    elif base_model is not None:
        peft_config.base_model_name_or_path = base_model
    elif not is_hub_id(peft_config.base_model_name_or_path):
        raise ValueError(
            f"The adapter's base model is the local folder {peft_config.base_model_name_or_path!r}, which nobody else "
            "can load: pass --model_name_or_path with the Hub id of that model (for a stage II adapter, the base with the "
            "stage I adapter merged, uploaded as its own model repository)."
        )
    report = None
    if evaluation_report is not None:
        report = json.loads(Path(evaluation_report).read_text(encoding="utf-8"))
    summary = load_training_summary(adapter_dir) or {"stage": None, "hyperparameters": {}}
    card = build_model_card(
        AdapterCardInfo(
            model_name=repo_id.split("/")[-1],
            base_model=peft_config.base_model_name_or_path,
            repo_id=repo_id,
            peft_config=peft_config,
            stage=summary["stage"],
            training=summary["hyperparameters"],
            datasets=datasets or [],
            evaluation_report=report,
            evaluation_model=evaluation_model,
            license=license or base_model_license(peft_config.base_model_name_or_path),
            framework_versions=summary.get("framework_versions"),
            stages=stages,
        )
    )
    HfApi(token=token).create_repo(repo_id, private=private, exist_ok=True)
    commit = upload_published_files(
        adapter_dir,
        repo_id,
        card=card,
        base_model=peft_config.base_model_name_or_path,
        token=token,
        revision=revision,
        commit_message=commit_message,
        parts=parts,
        stages=stages,
    )
    return commit.commit_url


def _stage2_parts(
    adapter_dir: Path, stage1_adapter: str | os.PathLike | None, upload_merged_base: bool
) -> tuple[dict[str, Path], dict[str, str] | None]:
    """The subfolders a stage II adapter is pushed with ({subfolder: folder}) and its `STAGES_NAME`; nothing for
    another adapter."""
    record = stage1_merge_record(adapter_dir)
    if record is None:
        if upload_merged_base or stage1_adapter is not None:
            raise ValueError(f"{adapter_dir} is not a stage II adapter on a stage I merge: it has no merged base.")
        return {}, None
    if upload_merged_base:
        return {MERGED_BASE_SUBFOLDER: Path(adapter_base_model(adapter_dir))}, {"merged_base": MERGED_BASE_SUBFOLDER}
    stage1 = _adapter_folder(stage1_adapter or record["adapter"])
    return {STAGE1_SUBFOLDER: stage1}, {"stage1_adapter": STAGE1_SUBFOLDER}
