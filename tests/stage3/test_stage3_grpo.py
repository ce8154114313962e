"""Stage III on tiny models: GRPO steps from a stage II adapter, resuming a stopped run, and the settings checks."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import bitsandbytes as bnb
import pytest
from datasets import load_dataset
from safetensors.torch import load_file
from trl.import_utils import is_vllm_available

from hf_finedefics.cli import main as cli
from hf_finedefics.hub import TRAINING_SUMMARY_NAME
from hf_finedefics.modeling import adapter_base_model
from hf_finedefics.rewards import FORMAT_INSTRUCTION
from hf_finedefics.testing import create_tiny_checkpoint, paper_processor_kwargs
from hf_finedefics.trainer.model_config import FinedeficsModelConfig
from hf_finedefics.trainer.reinforcement_config import ReinforcementConfig
from hf_finedefics.trainer.reinforcement_trainer import build_stage3_trainer, prepare_rl_dataset, train_stage3
from tests.architectures import architecture_params
from tests.stage2.conftest import make_stage1_adapter

# Two prompts x two answers per step; short answers. On open-set prompts the similarity reward differs between two
# random answers, so the advantages, hence the gradient, are not zero even when no answer is right.
TINY_GRPO = {
    "per_device_train_batch_size": 2,
    "num_generations": 2,
    "max_completion_length": 4,
    "open_set_similarity_weight": 1.0,
    "warmup_steps": 0,
    "learning_rate": 1e-3,
    "report_to": "none",
    "use_cpu": True,
    "bf16": False,
    "logging_steps": 1,
}


@pytest.mark.parametrize("architecture", architecture_params(("idefics2", "llava", "qwen2_5_vl")))
def test_grpo_step_from_a_stage2_adapter(architecture, dataset_folder, tmp_path):
    base = create_tiny_checkpoint(architecture)
    stage2 = make_stage1_adapter(base, tmp_path / "stage2")  # a LoRA adapter on the LLM and connector, as stage II's
    output_dir = tmp_path / "stage3"
    args = ReinforcementConfig(
        output_dir=str(output_dir), stage2_adapter=str(stage2), max_steps=1, save_strategy="steps", save_steps=1,
        **TINY_GRPO,
    )  # fmt: skip
    model_args = FinedeficsModelConfig(processor_kwargs=paper_processor_kwargs(base))
    rl = load_dataset(str(dataset_folder), "rl", split="train")
    rl = rl.select([index for index, task in enumerate(rl["task"]) if task == "open_set"][:4])
    assert train_stage3(model_args, args, rl) == output_dir

    # The new adapter sits on the merged stage II model, recorded relative to it.
    assert Path(adapter_base_model(output_dir)) == tmp_path / "stage3-stage2-merged"
    lora_b = [w for name, w in load_file(output_dir / "adapter_model.safetensors").items() if "lora_B" in name]
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b)  # B starts at zero: the step moved it
    summary = json.loads((output_dir / TRAINING_SUMMARY_NAME).read_text())
    assert summary["stage"] == "stage3"
    assert summary["hyperparameters"]["rewards"] == "multiple_choice x 1, open_set x 1, open_set_similarity x 1"
    # The card written with the checkpoint (peft's later local save rewrites its tags, not its body).
    card = (output_dir / "README.md").read_text()
    assert "stage III, reinforcement fine-tuning with GRPO" in card
    assert "| generations per prompt | 2 |" in card and "| KL coefficient (beta) | 0.0 |" in card


def stage3_cli(dataset_folder, output_dir, *extra, architecture="idefics2"):
    base = create_tiny_checkpoint(architecture)
    flags = [f"--{name}={value}" for name, value in TINY_GRPO.items()]
    cli(["stage3", "--model_name_or_path", str(base), "--dataset_name", str(dataset_folder), "--output_dir",
         str(output_dir), "--save_strategy", "steps", "--save_steps", "1", "--tasks", "multiple_choice", "open_set",
         "--processor_kwargs", json.dumps(paper_processor_kwargs(base)), *flags, *extra])  # fmt: skip


@pytest.mark.parametrize("architecture", architecture_params(("idefics2", "qwen2_5_vl")))
def test_rerun_resumes_from_the_last_checkpoint(architecture, dataset_folder, tmp_path, caplog):
    output_dir = tmp_path / "stage3"
    stage3_cli(dataset_folder, output_dir, "--max_steps", "1", architecture=architecture)
    first = output_dir / "checkpoint-1" / "trainer_state.json"
    written = first.stat().st_mtime_ns
    with caplog.at_level(logging.WARNING):
        stage3_cli(dataset_folder, output_dir, "--max_steps", "2", architecture=architecture)  # the same, longer
    assert first.stat().st_mtime_ns == written  # not retrained from step 0 over it
    state = json.loads((output_dir / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert f"Resuming from {output_dir / 'checkpoint-1'}" in caplog.text
    # Other reward settings are another run: refused, saying how to go on.
    with pytest.raises(ValueError, match=r"(?s)open-set contains reward.*--resume_from_checkpoint"):
        stage3_cli(
            dataset_folder,
            output_dir,
            "--max_steps",
            "3",
            "--open_set_contains_reward",
            "0.9",
            architecture=architecture,
        )


@pytest.mark.skipif(is_vllm_available(), reason="vLLM is installed")
def test_use_vllm_without_vllm_is_one_clear_line(tmp_path):
    """Refused by the config, before a model or a dataset is opened (neither exists here)."""
    with pytest.raises(ValueError, match="use_vllm needs vLLM"):
        ReinforcementConfig(output_dir=str(tmp_path), use_vllm=True, use_cpu=True, bf16=False)
    command = [sys.executable, "-c", "from hf_finedefics.cli import console_main; console_main()", "stage3",
               "--model_name_or_path", str(tmp_path / "no-model"), "--dataset_name", str(tmp_path / "no-data"),
               "--output_dir", str(tmp_path / "out"), "--use_vllm", "true"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    # The command line's way with a refused setting: the usage, then one line saying what is wrong.
    assert result.stderr.strip().splitlines()[-1] == (
        "finedefics stage3: error: use_vllm needs vLLM, which is not installed: `pip install vllm`, or set use_vllm "
        "false (answers are then sampled with model.generate)."
    )


def test_reward_weights_come_from_the_named_settings(tmp_path):
    args = ReinforcementConfig(
        output_dir=str(tmp_path), format_reward_weight=0.5, tasks=["multiple_choice"], use_cpu=True, bf16=False
    )
    assert args.reward_settings() == {"multiple_choice": 1.0, "format": 0.5}
    assert args.reward_weights == [1.0, 0.5]
    with pytest.raises(ValueError, match="by name"):
        ReinforcementConfig(output_dir=str(tmp_path), reward_weights=[1.0])
    with pytest.raises(ValueError, match="nothing would be rewarded"):
        ReinforcementConfig(output_dir=str(tmp_path), tasks=["open_set"], open_set_reward_weight=0.0)
    with pytest.raises(ValueError, match="tasks must be"):
        ReinforcementConfig(output_dir=str(tmp_path), tasks=["captioning"])


def test_rl_prompts_are_selected_by_task_and_ask_for_the_format_when_it_is_rewarded(dataset_folder, tmp_path):
    rl = load_dataset(str(dataset_folder), "rl", split="train")
    direct = ReinforcementConfig(output_dir=str(tmp_path), tasks=["open_set"], use_cpu=True, bf16=False)
    selected = prepare_rl_dataset(rl, direct)
    assert set(selected["task"]) == {"open_set"} and selected.num_rows == rl.num_rows // 2
    assert selected["prompt"] == [prompt for prompt, task in zip(rl["prompt"], rl["task"]) if task == "open_set"]

    reasoning = ReinforcementConfig(output_dir=str(tmp_path), format_reward_weight=0.5, use_cpu=True, bf16=False)
    asked = prepare_rl_dataset(rl, reasoning)
    for before, after in zip(rl["prompt"], asked["prompt"]):
        image, text = after[0]["content"]
        assert image["type"] == "image" and text["text"] == f"{before[0]['content'][1]['text']}\n{FORMAT_INSTRUCTION}"
    assert asked["images"][0][0].size == rl["images"][0][0].size  # the images travel untouched


def test_grpo_qlora_with_a_kl_term_from_the_base(dataset_folder, tmp_path):
    """QLoRA (4-bit NF4 base) straight from the base model; beta > 0 adds TRL's reference pass (the adapter off)."""
    base = create_tiny_checkpoint("idefics2")
    model_args = FinedeficsModelConfig(
        model_name_or_path=str(base),
        processor_kwargs=paper_processor_kwargs(base),
        load_in_4bit=True,
        bnb_4bit_compute_dtype="float32",
    )
    args = ReinforcementConfig(
        output_dir=str(tmp_path / "qlora"), max_steps=1, save_strategy="no", beta=0.02, **TINY_GRPO
    )
    trainer = build_stage3_trainer(model_args, args, load_dataset(str(dataset_folder), "rl", split="train"))
    quantized = [module for module in trainer.model.modules() if isinstance(module, bnb.nn.Linear4bit)]
    assert quantized and all(module.weight.quant_type == "nf4" for module in quantized)
    trainer.train()
    assert trainer.state.global_step == 1
    assert "kl" in trainer.state.log_history[0] and math.isfinite(trainer.state.log_history[0]["kl"])
    assert not (tmp_path / "qlora-stage2-merged").exists()  # nothing to merge without a stage II adapter
