"""The shipped recipes: they parse with their script's `TrlParser` into the paper's settings, flags override them,
unknown keys fail loudly, and the accelerate configs load as `accelerate launch` reads them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType
from accelerate.utils.launch import prepare_multi_gpu_env
from peft import get_peft_model
from transformers import AutoImageProcessor, AutoModelForImageTextToText

from hf_finedefics.scripts import stage1, stage2, stage3
from hf_finedefics.testing import create_tiny_checkpoint
from hf_finedefics.trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from hf_finedefics.trainer.instruction_tuning_config import InstructionTuningConfig
from hf_finedefics.trainer.model_config import FinedeficsModelConfig
from hf_finedefics.trainer.reinforcement_config import ReinforcementConfig
from hf_finedefics.trainer.reinforcement_trainer import train_stage3

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
# recipe folder -> (base model, tiny architecture of the same family)
MODELS = {
    "idefics2-8b": ("HuggingFaceM4/idefics2-8b", "idefics2"),
    "llava-1.5-7b": ("llava-hf/llava-1.5-7b-hf", "llava"),
    "smolvlm2-2.2b": ("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "smolvlm"),
    "qwen2.5-vl-7b": ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl"),
    "qwen3-vl-8b": ("Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl"),
    "gemma-3-4b": ("google/gemma-3-4b-it", "gemma3"),
    "llava-onevision-7b": ("llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava_onevision"),
}
# tiny architecture -> a module name inside its connector
CONNECTORS = {
    "idefics2": "perceiver_resampler",
    "llava": "multi_modal_projector",
    "smolvlm": "connector",
    "qwen2_5_vl": "visual.merger",
    "qwen3_vl": "visual.merger",
    "gemma3": "multi_modal_projector",  # trained in full (`modules_to_save`), not by LoRA
    "llava_onevision": "multi_modal_projector",
}
STAGES = {"stage1": stage1.make_parser, "stage2": stage2.make_parser}
# The paper trains on 8 GPUs with accumulated batches of 64 (stage I) and 128 (stage II).
PAPER_GPUS = 8
PAPER_GLOBAL_BATCH = {"stage1": 64, "stage2": 128}
# bf16 needs a GPU unless the run is told it is on CPU, as these tests are.
ON_CPU = ["--use_cpu", "true"]


def parse_recipe(stage: str, recipe: Path, *flags: str):
    """(script, model, training) arguments, parsed by the stage's own command parser."""
    script_args, training_args, model_args = STAGES[stage]().parse_args_and_config(
        ["--config", str(recipe), *ON_CPU, *flags]
    )
    assert isinstance(model_args, FinedeficsModelConfig)
    assert isinstance(training_args, ContrastiveAlignmentConfig if stage == "stage1" else InstructionTuningConfig)
    return script_args, model_args, training_args


def recipe_path(model: str, stage: str) -> Path:
    return RECIPES / model / stage / "config_qlora.yaml"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("model", MODELS)
def test_recipe_parses_into_the_papers_settings(model, stage):
    script_args, model_args, training_args = parse_recipe(stage, recipe_path(model, stage))

    assert model_args.model_name_or_path == MODELS[model][0]
    # QLoRA: NF4 weights, bfloat16 compute; LoRA r=8, alpha=8, dropout 0.2
    quantization = model_args.quantization_config()
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_compute_dtype == torch.bfloat16
    assert (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (8, 8, 0.2)
    # lr 2e-4, linear decay, 60 warm-up steps, weight decay 0.01, one epoch, bf16, activation checkpointing
    assert training_args.learning_rate == pytest.approx(2e-4)
    assert training_args.lr_scheduler_type == "linear"
    assert training_args.warmup_steps == 60
    assert training_args.weight_decay == pytest.approx(0.01)
    assert training_args.num_train_epochs == 1
    assert training_args.bf16 and training_args.activation_checkpointing
    per_step = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    assert per_step * PAPER_GPUS == PAPER_GLOBAL_BATCH[stage]
    assert not training_args.push_to_hub

    if stage == "stage1":
        assert script_args.dataset_config == "triples" and model_args.use_peft
        assert training_args.temperature == pytest.approx(0.07)
        weights = (training_args.oac_weight, training_args.acc_weight, training_args.ccc_weight)
        assert (training_args.generation_loss_weight, *weights) == (1.0, 0.5, 0.5, 0.5)
        assert training_args.gather_across_processes
    else:
        assert script_args.dataset_config == "instructions"
        assert training_args.stage1_adapter == f"outputs/{model}/stage1"
        assert sorted(training_args.instruction_types) == ["multiple_choice", "open_set"]
        assert training_args.paradigm == "two_stage"
        assert training_args.completion_only_loss and training_args.max_length is None


@pytest.mark.parametrize("model", MODELS)
def test_recipe_lora_is_the_papers_on_its_model_family(model):
    """The recipe's LoRA, built on a (tiny) model of the recipe's family: gaussian init, r=8, alpha=8, on the LLM
    and the connector only (Gemma 3's connector trained in full instead)."""
    _, model_args, _ = parse_recipe("stage1", recipe_path(model, "stage1"))
    tiny = AutoModelForImageTextToText.from_pretrained(create_tiny_checkpoint(MODELS[model][1]))
    lora = model_args.lora_config(tiny)

    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.init_lora_weights) == (8, 8, 0.2, "gaussian")
    peft_model = get_peft_model(tiny, lora)
    targeted = {name for name, _ in peft_model.named_modules() if name.endswith("lora_A")}
    trained = {name for name, param in peft_model.named_parameters() if param.requires_grad}
    connector = CONNECTORS[MODELS[model][1]]
    assert any(connector not in name for name in targeted)  # the LLM
    assert any(connector in name for name in trained)
    assert not any("vision" in name or "visual.blocks" in name for name in trained)


def test_flags_override_recipe_values():
    script_args, model_args, training_args = parse_recipe(
        "stage1",
        recipe_path("idefics2-8b", "stage1"),
        "--learning_rate", "1e-4",
        "--lora_r", "16",
        "--dataset_name", "data/finedefics-bird-200",
        "--gradient_accumulation_steps", "32",
    )  # fmt: skip
    assert training_args.learning_rate == pytest.approx(1e-4)
    assert model_args.lora_r == 16
    assert script_args.dataset_name == "data/finedefics-bird-200"
    assert training_args.gradient_accumulation_steps == 32
    # values not overridden keep the recipe's
    assert training_args.warmup_steps == 60 and model_args.lora_alpha == 8


@pytest.mark.parametrize(
    ("stage", "key"),
    [
        ("stage1", "lora_rank"),  # a typo
        ("stage1", "torch_dtype"),  # the old name of `dtype`, common in recipes found online
        ("stage2", "max_seq_length"),  # the old name of `max_length`
    ],
)
def test_unknown_recipe_key_fails_naming_the_key(stage, key, tmp_path):
    recipe = yaml.safe_load(recipe_path("idefics2-8b", stage).read_text())
    recipe[key] = 8
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ValueError, match=f"--{key}"):
        parse_recipe(stage, path)


@pytest.mark.parametrize(("stage", "own_flag"), [("stage1", "--temperature"), ("stage2", "--stage1_adapter")])
def test_stage_scripts_run_as_modules(stage, own_flag):
    """The README's `accelerate launch ... -m hf_finedefics.scripts.<stage>` runs the module's parser."""
    result = subprocess.run(
        [sys.executable, "-m", f"hf_finedefics.scripts.{stage}", "--help"], capture_output=True, text=True, check=True
    )
    assert own_flag in result.stdout and "--lora_r" in result.stdout


@pytest.mark.parametrize(
    ("name", "distributed_type"),
    [
        ("ddp", DistributedType.MULTI_GPU),
        ("zero2", DistributedType.DEEPSPEED),
        ("zero3", DistributedType.DEEPSPEED),
        ("fsdp", DistributedType.FSDP),
    ],
)
def test_accelerate_config_loads(name, distributed_type):
    path = RECIPES / "accelerate_configs" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == distributed_type
    assert (config.num_processes, config.num_machines, config.mixed_precision) == (8, 1, "bf16")
    # What `accelerate launch --config_file ...` does with it before starting processes.
    launch_flags = ["--config_file", str(path), "--num_processes", "16", "--num_machines", "2"]
    args = launch_command_parser().parse_args([*launch_flags, "-m", "hf_finedefics.scripts.stage1"])
    _validate_launch_command(args)
    assert args.num_processes == 16 and args.num_machines == 2
    assert args.use_deepspeed == (distributed_type == DistributedType.DEEPSPEED)
    assert args.use_fsdp == (distributed_type == DistributedType.FSDP)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(("model", "pixels_per_token"), [("qwen2.5-vl-7b", 28), ("qwen3-vl-8b", 32)])
def test_qwen_recipe_bounds_the_visual_tokens(model, pixels_per_token, stage):
    """The Qwen-VL recipes' processor settings reach the image processor: 64 to 256 visual tokens per image (28x28
    px each on Qwen2.5-VL, 32x32 on Qwen3-VL)."""
    _, model_args, _ = parse_recipe(stage, recipe_path(model, stage))
    image_processor = AutoImageProcessor.from_pretrained(
        create_tiny_checkpoint(MODELS[model][1]), **model_args.processor_kwargs
    )
    token_area = pixels_per_token**2
    assert (image_processor.size.shortest_edge, image_processor.size.longest_edge) == (
        64 * token_area,
        256 * token_area,
    )


@pytest.mark.parametrize("stage", STAGES)
def test_gemma3_recipe_keeps_pan_and_scan_off(stage):
    """One 256-token view per image, as the paper feeds images whole."""
    _, model_args, _ = parse_recipe(stage, recipe_path("gemma-3-4b", stage))
    image_processor = AutoImageProcessor.from_pretrained(
        create_tiny_checkpoint("gemma3"), **model_args.processor_kwargs
    )
    assert image_processor.do_pan_and_scan is False


def _fsdp_units_with_mixed_requires_grad(model, classes_to_wrap: str, monkeypatch) -> list[str]:
    """The FSDP units whose parameters are partly trainable, partly frozen, under the auto-wrap policy the Trainer
    uses for a peft model: each parameter belongs to the innermost wrapped module holding it, else to the root. FSDP
    with `use_orig_params: false` flattens each unit into one tensor, which needs one `requires_grad` (FSDP itself
    needs a GPU, so the grouping is checked)."""
    from peft.utils.other import fsdp_auto_wrap_policy

    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", classes_to_wrap)  # what `accelerate launch` exports
    policy = fsdp_auto_wrap_policy(model)
    wrapped = [name for name, module in model.named_modules() if name and policy(module, False, 1)]
    units: dict[str, set[bool]] = {}
    for name, param in model.named_parameters():
        unit = max((w for w in wrapped if name.startswith(f"{w}.")), key=len, default="")
        units.setdefault(unit, set()).add(param.requires_grad)
    return [unit or "<root>" for unit, flags in units.items() if len(flags) > 1]


@pytest.mark.parametrize("stage", STAGES)
def test_gemma3_fsdp_qlora_launch_line_wraps_the_trained_connector_alone(stage, tmp_path, monkeypatch):
    """The Gemma 3 recipe's FSDP-QLoRA launch line: accelerate exports its wrap classes, and with them every FSDP
    unit of the QLoRA model (fully trained connector) is all trainable or all frozen; without the connector class
    the root unit mixes them, which `fsdp_use_orig_params: false` refuses."""
    recipe = recipe_path("gemma-3-4b", stage)
    classes = re.search(r"--fsdp_transformer_layer_cls_to_wrap (\S+)", recipe.read_text()).group(1)
    launch = RECIPES / "accelerate_configs" / "fsdp_qlora.yaml"
    args = launch_command_parser().parse_args(
        [
            "--config_file",
            str(launch),
            "--fsdp_transformer_layer_cls_to_wrap",
            classes,
            "-m",
            f"hf_finedefics.scripts.{stage}",
        ]
    )
    _validate_launch_command(args)
    assert prepare_multi_gpu_env(args)["FSDP_TRANSFORMER_CLS_TO_WRAP"] == classes

    _, model_args, _ = parse_recipe(stage, recipe)
    model_args.model_name_or_path = str(create_tiny_checkpoint("gemma3", tmp_path / "gemma3"))
    model, _ = model_args.load(is_trainable=True)
    model = get_peft_model(model, model_args.lora_config(model))
    assert _fsdp_units_with_mixed_requires_grad(model, classes, monkeypatch) == []
    without_connector = classes.replace(",Gemma3MultiModalProjector", "")
    assert _fsdp_units_with_mixed_requires_grad(model, without_connector, monkeypatch) == ["<root>"]


def test_fsdp_qlora_config_and_recipe_keys(tmp_path):
    """The FSDP-QLoRA launcher loads, and the QLoRA recipes store the 4-bit weights in the compute dtype, which a
    model built from them really does (a tiny one, on CPU)."""
    config = load_config_from_file(str(RECIPES / "accelerate_configs" / "fsdp_qlora.yaml"))
    assert config.distributed_type == DistributedType.FSDP
    assert config.fsdp_config["fsdp_use_orig_params"] is False
    assert config.fsdp_config["fsdp_cpu_ram_efficient_loading"] and config.fsdp_config["fsdp_sync_module_states"]
    for model_dir in MODELS:
        for stage in STAGES:
            _, model_args, _ = parse_recipe(stage, recipe_path(model_dir, stage))
            quantization = model_args.quantization_config()
            assert quantization.load_in_4bit and model_args.dtype == "bfloat16"
            assert quantization.bnb_4bit_quant_storage == quantization.bnb_4bit_compute_dtype == torch.bfloat16
    _, model_args, _ = parse_recipe("stage1", recipe_path("idefics2-8b", "stage1"))
    model_args.model_name_or_path = str(create_tiny_checkpoint("idefics2", tmp_path / "idefics2"))
    model, _ = model_args.load(is_trainable=True)
    packed = [p for p in model.parameters() if type(p).__name__ == "Params4bit"]
    assert packed and all(p.dtype == p.quant_storage == torch.bfloat16 for p in packed)
    # one uniform dtype, which FSDP's flat parameters need
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


# The models with a stage III (GRPO) recipe.
STAGE3_MODELS = ("idefics2-8b", "qwen2.5-vl-7b")


def parse_stage3_recipe(model: str, *flags: str):
    path = RECIPES / model / "stage3" / "config_grpo.yaml"
    script_args, training_args, model_args = stage3.make_parser().parse_args_and_config(
        ["--config", str(path), *ON_CPU, *flags]
    )
    assert isinstance(training_args, ReinforcementConfig) and isinstance(model_args, FinedeficsModelConfig)
    return script_args, model_args, training_args


@pytest.mark.parametrize("model", STAGE3_MODELS)
def test_stage3_recipe_parses_into_its_grpo_settings(model):
    script_args, model_args, training_args = parse_stage3_recipe(model)
    assert model_args.model_name_or_path == MODELS[model][0]
    assert training_args.stage2_adapter == f"outputs/{model}/stage2"
    assert script_args.dataset_config == "rl"
    assert (model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout) == (8, 8, 0.2)
    # The visual tokens of the model's stage II recipe.
    _, stage2_model_args, _ = parse_recipe("stage2", recipe_path(model, "stage2"))
    assert model_args.processor_kwargs == stage2_model_args.processor_kwargs
    assert training_args.num_generations == 8 and training_args.max_completion_length == 32
    assert training_args.beta == pytest.approx(0.02) and training_args.learning_rate == pytest.approx(1e-5)
    assert training_args.reward_settings() == {"multiple_choice": 1.0, "open_set": 1.0}
    # Runs without vLLM as written; the header's --use_vllm true turns on colocated generation.
    assert not training_args.use_vllm and training_args.vllm_mode == "colocate"
    # Every device step samples whole groups, on one GPU and on the ddp config's 8.
    for processes in (1, PAPER_GPUS):
        assert training_args.per_device_train_batch_size * processes % training_args.num_generations == 0


@pytest.mark.parametrize("model", STAGE3_MODELS)
def test_stage3_recipe_lora_is_on_the_llm_and_connector_of_its_family(model):
    _, model_args, _ = parse_stage3_recipe(model)
    tiny = AutoModelForImageTextToText.from_pretrained(create_tiny_checkpoint(MODELS[model][1]))
    targeted = {
        name
        for name, _ in get_peft_model(tiny, model_args.lora_config(tiny)).named_modules()
        if name.endswith("lora_A")
    }
    assert any(CONNECTORS[MODELS[model][1]] in name for name in targeted)
    assert not any("vision" in name or "visual.blocks" in name for name in targeted)


def test_idefics2_stage3_recipe_trains_on_its_tiny_twin(tmp_path):
    """The recipe's GRPO settings (a KL term, so a reference forward pass with the adapter off) run one step on a
    tiny Idefics2, started from the base (no stage II folder here), with a few rl prompts."""
    from dataset_builders.build import build_synthetic_dataset
    from dataset_builders.sources.synthetic import SyntheticFGVRConfig
    from hf_finedefics.data.loading import load_dataset_split

    synthetic = SyntheticFGVRConfig(num_categories=4, train_per_category=1, test_per_category=1)
    folder = build_synthetic_dataset(synthetic, tmp_path / "data", tmp_path / "source")
    _, model_args, training_args = parse_stage3_recipe(
        "idefics2-8b",
        "--model_name_or_path", str(create_tiny_checkpoint("idefics2")),
        "--output_dir", str(tmp_path / "stage3"),
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--num_generations", "2",
        "--gradient_accumulation_steps", "1", "--max_completion_length", "4",
        "--bf16", "false", "--report_to", "none", "--save_strategy", "no", "--log_completions", "false",
    )  # fmt: skip
    training_args.stage2_adapter = None  # no stage II folder here: start from the tiny base
    assert training_args.beta > 0
    train_stage3(model_args, training_args, load_dataset_split(folder, "rl"))
    assert (tmp_path / "stage3" / "adapter_model.safetensors").is_file()
