"""ContrastiveAlignmentTrainer (stage I) on tiny real architectures."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from peft import get_peft_model
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BitsAndBytesConfig,
    TrainerCallback,
)

from hf_finedefics.backbones import get_backbone
from hf_finedefics.collators import ContrastiveAlignmentCollator
from hf_finedefics.embeddings import image_inputs, tokenize_texts
from hf_finedefics.hub import TRAINING_SUMMARY_NAME
from hf_finedefics.losses import AttributeAugmentedContrastiveLoss
from hf_finedefics.objectives import ContrastiveAlignmentModel, stage1_objective
from hf_finedefics.testing import PROCESSORLESS_ARCHITECTURES, create_tiny_checkpoint, paper_processor_kwargs
from hf_finedefics.trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from hf_finedefics.trainer.contrastive_alignment_trainer import ContrastiveAlignmentTrainer

from ..conftest import TINY_TRAINING_ARGS, synthetic_triples

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def triples():
    return synthetic_triples(num_categories=8, train_per_category=4, test_per_category=1)


def _config(tmp_path, **overrides):
    defaults = dict(TINY_TRAINING_ARGS, output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, seed=0)
    return ContrastiveAlignmentConfig(**{**defaults, **overrides})


def paper_processor(model):
    """The model's processor with the paper's settings (the tiny Idefics2 splits images by default)."""
    path = model.config._name_or_path
    return AutoProcessor.from_pretrained(path, **paper_processor_kwargs(path))


def _trainer(model, config, triples, **kwargs):
    kwargs.setdefault("processing_class", paper_processor(model))
    return ContrastiveAlignmentTrainer(
        model, config, train_dataset=triples, peft_config=get_backbone(model).lora_config(), **kwargs
    )


def test_collator_masks_prompt_and_deduplicates_texts(tiny_model_and_processor, triples):
    model, processor = tiny_model_and_processor
    backbone = get_backbone(model)
    rows = [triples[i] for i in range(4)]
    batch = ContrastiveAlignmentCollator(processor, eos_token_id=backbone.eos_token_id)(rows)

    for i, row in enumerate(rows):
        answer = batch["input_ids"][i][batch["generation_labels"][i] != -100]
        decoded = processor.tokenizer.decode(answer, skip_special_tokens=True)
        assert decoded.strip() == row["attribute"].strip()
        # no image placeholder is ever supervised
        assert not (batch["generation_labels"][i] == model.config.image_token_id).any()
        # one BOS, whether the tokenizer adds it or the template writes it (Gemma 3's tokenizer does both)
        bos = processor.tokenizer.bos_token_id
        assert bos is None or batch["input_ids"][i][:2].tolist() != [bos, bos]

    distinct = {row["attribute"] for row in rows} | {row["category"] for row in rows}
    distinct |= {text for row in rows for text in row["neg_attributes"] + row["neg_categories"]}
    assert batch["text_input_ids"].shape[0] == len(distinct)
    texts = processor.tokenizer.batch_decode(batch["text_input_ids"], skip_special_tokens=True)
    assert texts[batch["category_index"][0]] == rows[0]["category"]
    assert texts[batch["neg_category_index"][1, 2]] == rows[1]["neg_categories"][2]
    assert batch["neg_attribute_index"].shape == (4, 3)
    assert batch["class_labels"].tolist() == [row["label"] for row in rows]

    everything = ContrastiveAlignmentCollator(processor, backbone.eos_token_id, loss_on_all_tokens=True)(rows)
    assert ((everything["generation_labels"] != -100) == everything["attention_mask"].bool()).all()


def _in_adapter(name: str) -> bool:
    """A weight the adapter trains: LoRA's, or a module it trains in full (Gemma 3's connector, a bare weight matrix
    LoRA with dropout cannot wrap)."""
    return "lora_" in name or ".modules_to_save." in name


def test_training_step_updates_only_lora(tiny_model_and_processor, triples, tmp_path):
    model, processor = tiny_model_and_processor
    trainer = _trainer(model, _config(tmp_path), triples)
    batch = trainer._prepare_inputs(trainer.data_collator([triples[i] for i in range(8)]))
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    with_grad = {name for name, p in trainer.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert with_grad and with_grad <= trainable
    assert all(_in_adapter(name) for name in trainable)
    connector = ("modality_projection", "perceiver_resampler", "multi_modal_projector", "merger")
    assert any(part in name for name in with_grad for part in connector), "the connector gets no gradient"
    assert any(part in name for name in with_grad for part in ("text_model", "language_model"))
    assert not any(part in name for name in trainable for part in ("vision_model", "vision_tower"))


def test_activation_checkpointing_trains_the_wrapped_model(tiny_checkpoint, triples, tmp_path):
    """The paper's recipes turn activation checkpointing on: the Trainer enables it through the stage I wrapper,
    and a checkpointed step gives the same loss and LoRA gradients as a plain one."""
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    trainer = _trainer(model, _config(tmp_path), triples)
    batch = trainer._prepare_inputs(trainer.data_collator([triples[i] for i in range(8)]))
    trainer.model.eval()  # no dropout: both passes see the same network

    def loss_and_grads():
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}

    plain_loss, plain_grads = loss_and_grads()
    trainer.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    checkpointed_loss, checkpointed_grads = loss_and_grads()
    assert checkpointed_loss == pytest.approx(plain_loss, rel=1e-5)
    assert plain_grads.keys() == checkpointed_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)

    config = _config(tmp_path, activation_checkpointing=True, max_steps=1)
    checkpointed = _trainer(AutoModelForImageTextToText.from_pretrained(tiny_checkpoint), config, triples)
    checkpointed.train()
    assert checkpointed.model.model.is_activation_checkpointing


def test_logs_every_term(tiny_checkpoint, triples, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    config = _config(
        tmp_path, eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=8, log_term_gradient_norms=True
    )
    trainer = _trainer(model, config, triples, eval_dataset=triples.select(range(16)))
    trainer.train()
    names = ["loss_gen", "loss_oac", "loss_acc", "loss_ccc"]
    for pair in ("object_to_attribute", "attribute_to_category", "object_to_category"):
        names += [f"accuracy_{pair}", f"cosine_positive_{pair}", f"cosine_negative_{pair}"]
    train_log, eval_log = trainer.state.log_history[0], trainer.state.log_history[2]
    assert all(name in train_log for name in names)
    assert all(f"eval_{name}" in eval_log for name in names)
    gradient_norms = [f"grad_norm_{term}" for term in ("gen", "oac", "acc", "ccc")]
    assert all(train_log[name] > 0 for name in gradient_norms)
    assert not any(f"eval_{name}" in eval_log for name in gradient_norms)
    # The final save's training summary says where stage I ended, as logged last.
    trainer.save_model(str(tmp_path / "final"))
    summary = json.loads((tmp_path / "final" / TRAINING_SUMMARY_NAME).read_text())
    last = [entry for entry in trainer.state.log_history if "loss" in entry][-1]
    assert summary["alignment"]["step"] == last["step"]
    assert all(summary["alignment"][name] == last[name] for name in names)
    weighted = train_log["loss_gen"] + 0.5 * (train_log["loss_oac"] + train_log["loss_acc"] + train_log["loss_ccc"])
    assert train_log["loss"] == pytest.approx(weighted, rel=1e-4)


def test_object_category_ablation_trains_without_attribute_text(tiny_checkpoint, triples, tmp_path):
    """Table 3b: object<->category contrastive + generation of the category name; no attribute column exists."""
    without = triples.remove_columns(["attribute", "neg_attributes"])
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    trainer = _trainer(model, _config(tmp_path, objective="object_category"), without)
    rows = [without[i] for i in range(4)]
    batch = trainer.data_collator(rows)
    tokenizer = trainer.processing_class.tokenizer
    for i, row in enumerate(rows):
        answer = batch["input_ids"][i][batch["generation_labels"][i] != -100]
        assert tokenizer.decode(answer, skip_special_tokens=True).strip() == row["category"]
        prompt = tokenizer.decode(batch["input_ids"][i][batch["attention_mask"][i].bool()])
        assert f"What is the name of the {row['superclass']} in this image?" in prompt
    texts = set(tokenizer.batch_decode(batch["text_input_ids"], skip_special_tokens=True))
    assert texts == {row["category"] for row in rows} | {name for row in rows for name in row["neg_categories"]}
    trainer.train()
    log = trainer.state.log_history[0]
    assert "loss_oc" in log and not {"loss_oac", "loss_acc", "loss_ccc"} & set(log)
    # The ablation's metrics name what it aligns: no attribute text, so no attribute pair.
    assert "accuracy_object_to_category" in log and not [name for name in log if "attribute" in name]
    assert log["loss"] == pytest.approx(log["loss_gen"] + 0.5 * log["loss_oc"], rel=1e-4)
    with pytest.raises(ValueError, match="lacks the column"):
        _trainer(AutoModelForImageTextToText.from_pretrained(tiny_checkpoint), _config(tmp_path), without)


# A learning check (200 steps), not a path check: run on the two reference families only. On the tiled Idefics3
# (5 tiles per image) it alone took 218 s of the suite's ~15 min; the other tests here run every backbone's path.
@pytest.mark.parametrize("architecture", ["idefics2", "llava"])
def test_training_lowers_contrastive_terms(architecture, tmp_path):
    triples = synthetic_triples(num_categories=8, train_per_category=8, test_per_category=1)
    model = AutoModelForImageTextToText.from_pretrained(create_tiny_checkpoint(architecture))
    config = _config(tmp_path, max_steps=200, learning_rate=2e-3, logging_steps=20, num_train_epochs=100)
    trainer = _trainer(model, config, triples)
    trainer.train()
    history = [entry for entry in trainer.state.log_history if "loss_oac" in entry]
    first, last = history[0], history[-1]
    for term in ("loss_oac", "loss_acc"):
        assert last[term] < 0.8 * first[term], (term, first[term], last[term])
    # The bounded CCC (the default) is >= 0 and only falls; on these tiny names it starts near its floor already.
    assert 0 <= last["loss_ccc"] <= max(first["loss_ccc"], 1e-3)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("attribute", "  ", "row 3: column 'attribute' is empty"),
        ("category", "", "row 3: column 'category' is empty"),
        ("neg_categories", ["a", "b"], "row 3: .* same length"),
    ],
)
def test_bad_rows_fail_before_training(tiny_checkpoint, triples, tmp_path, column, value, message):
    rows = triples.select(range(8)).to_list()
    rows[3][column] = value
    broken = datasets.Dataset.from_list(rows, features=triples.features)
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    with pytest.raises(ValueError, match=message):
        _trainer(model, _config(tmp_path), broken)


def test_rows_with_different_k_fail(tiny_checkpoint, triples, tmp_path):
    rows = triples.select(range(8)).to_list()
    rows[5]["neg_categories"] = rows[5]["neg_categories"][:2]
    rows[5]["neg_attributes"] = rows[5]["neg_attributes"][:2]
    broken = datasets.Dataset.from_list(rows, features=triples.features)
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    with pytest.raises(ValueError, match="row 5: 2 hard negatives, earlier rows have 3"):
        _trainer(model, _config(tmp_path), broken)


def test_undecodable_image_fails_naming_the_row(tiny_checkpoint, triples, tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    rows = triples.select(range(4)).remove_columns("image").to_list()
    for i, row in enumerate(rows):
        row["image"] = str(bad if i == 2 else good)
    broken = datasets.Dataset.from_list(rows).cast_column("image", datasets.Image())
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    with pytest.raises(ValueError, match=r"row 2: the image '.*broken.png' cannot be decoded"):
        _trainer(model, _config(tmp_path), broken)


def test_qlora_trains_on_cpu(tiny_checkpoint, triples, tmp_path):
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
    )
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint, quantization_config=quantization)
    assert model.is_loaded_in_4bit
    trainer = _trainer(model, _config(tmp_path, max_steps=3, learning_rate=1e-2), triples)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)
    changed = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed and all(_in_adapter(name) for name in changed)
    quantized = [m for m in trainer.model.modules() if type(m).__name__ == "Linear4bit"]
    assert quantized


class _StopAt(TrainerCallback):
    """Ends training after `step` steps, like a job killed right after a checkpoint."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.mark.parametrize("mini_batch_size", [None, 3])
def test_resume_continues_identically(triples, tmp_path, mini_batch_size):
    """Also with gradient caching (`contrastive_mini_batch_size`), whose per-mini-batch seeds come from the
    restored random state."""
    checkpoint = create_tiny_checkpoint("idefics2")

    def run(output_dir, resume=None, callbacks=None):
        torch.manual_seed(0)
        model = AutoModelForImageTextToText.from_pretrained(checkpoint)
        config = _config(
            tmp_path,
            output_dir=str(output_dir),
            max_steps=4,
            save_strategy="steps",
            save_steps=2,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            contrastive_mini_batch_size=mini_batch_size,
        )
        trainer = _trainer(model, config, triples, callbacks=callbacks)
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    full = run(tmp_path / "full")
    interrupted_dir = tmp_path / "interrupted"
    run(interrupted_dir, callbacks=[_StopAt(2)])
    assert (interrupted_dir / "checkpoint-2" / "adapter_model.safetensors").exists()
    assert not (interrupted_dir / "checkpoint-4").exists()
    resumed = run(interrupted_dir, resume=str(interrupted_dir / "checkpoint-2"))
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        if "lora_" in name:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    full_losses = [e["loss"] for e in full.state.log_history if "loss" in e]
    resumed_losses = [e["loss"] for e in resumed.state.log_history if "loss" in e]
    assert resumed_losses[-2:] == pytest.approx(full_losses[-2:], rel=1e-5)
    # the final folder is a plain peft adapter that loads onto the base model
    resumed.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "adapter_config.json").exists()
    AutoProcessor.from_pretrained(tmp_path / "final")


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    """The plain step and the gradient-cached step (mini-batches of 3 of each process's 4 rows, 2 of its texts'
    mini-batches) under 2-process DDP both equal the plain single-process step on the global batch."""
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not on PATH")
    checkpoint = str(create_tiny_checkpoint("idefics2", tmp_path / "tiny"))
    worker = str(TESTS / "ddp_stage1_worker.py")
    # The repository root first, so the workers import this checkout's package.
    pythonpath = os.pathsep.join(filter(None, [str(TESTS.parents[1]), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}
    single = str(tmp_path / "single.pt")
    subprocess.run([sys.executable, worker, checkpoint, single, "8"], check=True, env=env, timeout=300)
    single_result = torch.load(single)
    for name, extra in (("ddp", []), ("ddp_cached", ["3"])):
        output = str(tmp_path / f"{name}.pt")
        subprocess.run(
            ["torchrun", "--standalone", "--nproc_per_node", "2", worker, checkpoint, output, "4", *extra],
            check=True,
            env=env,
            timeout=300,
        )
        ddp_result = torch.load(output)
        for term, value in single_result["losses"].items():
            assert ddp_result["losses"][term] == pytest.approx(value, rel=1e-4, abs=1e-5), (name, term)
        assert single_result["lora"].keys() == ddp_result["lora"].keys()
        for param, weight in single_result["lora"].items():
            torch.testing.assert_close(ddp_result["lora"][param], weight, rtol=1e-4, atol=1e-6, msg=f"{name} {param}")


def test_full_fine_tuning_keeps_the_vision_encoder_frozen(tiny_checkpoint, triples, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    # Qwen-VL's connector (`merger`, and Qwen3-VL's DeepStack mergers) lives inside `visual` and trains.
    vision = get_backbone(model).vision_encoder
    encoder = {name: p for name, p in vision.named_parameters() if "merger" not in name}
    before = {name: p.detach().clone() for name, p in encoder.items()}
    trainer = ContrastiveAlignmentTrainer(
        model,
        _config(tmp_path, max_steps=1, learning_rate=1e-2),
        train_dataset=triples,
        processing_class=paper_processor(model),
    )
    trainer.train()
    assert all(torch.equal(p, before[name]) for name, p in encoder.items())
    assert not any(p.requires_grad for p in encoder.values())
    connector = ("modality_projection", "multi_modal_projector", "merger")
    projector = [p for n, p in trainer.model.named_parameters() if any(part in n for part in connector)]
    assert projector and all(p.requires_grad for p in projector)
    trainer.save_model(str(tmp_path / "full"))
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "full")
    torch.testing.assert_close(reloaded.lm_head.weight, model.lm_head.weight)


def test_stage1_command_trains_and_saves_an_adapter(triples, tmp_path):
    from hf_finedefics.cli import main as cli

    checkpoint = create_tiny_checkpoint("llava")
    triples.select(range(8)).save_to_disk(str(tmp_path / "triples"))
    output_dir = tmp_path / "stage1"
    cli(
        ["stage1", "--dataset_name", str(tmp_path / "triples"), "--model_name_or_path", str(checkpoint)]
        + ["--output_dir", str(output_dir), "--max_steps", "1", "--per_device_train_batch_size", "4"]
        + ["--report_to", "none", "--use_cpu", "true", "--save_strategy", "no", "--lora_r", "4"]
    )
    adapter = json.loads((output_dir / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["base_model_name_or_path"] == str(checkpoint)
    AutoProcessor.from_pretrained(output_dir)


def _stage1_batch_below_the_processor(tokenizer, image_processor, model, rows, padding_side):
    """A `ContrastiveAlignmentCollator` batch for a family whose processor cannot be built here (it needs
    torchvision): the chat template's single image placeholder (<|image_pad|>, <image>) expanded to the image's
    visual token count (Qwen's grid t*h*w / merge**2, LLaVA-OneVision's packed anyres tokens), as the processor
    does, prompt tokens masked, texts by `tokenize_texts`."""
    backbone = get_backbone(model)
    images = image_inputs(image_processor, [row["image"] for row in rows], backbone)
    placeholder = tokenizer.convert_ids_to_tokens(backbone.model.config.image_token_id)
    with torch.no_grad():
        counts = [len(tokens) for tokens in backbone.image_features(images).pooler_output]
    sequences, labels = [], []
    for row, count in zip(rows, counts):
        prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the bird."}]}]
        answer = {"role": "assistant", "content": [{"type": "text", "text": row["attribute"]}]}
        prompt_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        full_text = tokenizer.apply_chat_template([*prompt, answer], tokenize=False)
        prompt_ids = tokenizer(prompt_text.replace(placeholder, placeholder * count))["input_ids"]
        ids = tokenizer(full_text.replace(placeholder, placeholder * count))["input_ids"]
        assert ids[: len(prompt_ids)] == prompt_ids
        sequences.append(ids)
        labels.append([-100] * len(prompt_ids) + ids[len(prompt_ids) :])
    length = max(map(len, sequences))
    input_ids = torch.full((len(rows), length), tokenizer.pad_token_id)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    generation_labels = torch.full((len(rows), length), -100)
    for i, (ids, label) in enumerate(zip(sequences, labels)):
        span = slice(length - len(ids), length) if padding_side == "left" else slice(0, len(ids))
        input_ids[i, span], attention_mask[i, span], generation_labels[i, span] = (
            torch.tensor(ids),
            1,
            torch.tensor(label),
        )
    texts = [row["attribute"] for row in rows] + [row["category"] for row in rows]
    texts += [text for row in rows for text in row["neg_attributes"] + row["neg_categories"]]
    tokenized = tokenize_texts(tokenizer, texts, backbone.eos_token_id)
    n, k = len(rows), len(rows[0]["neg_attributes"])
    negatives = torch.arange(2 * n, 2 * n + 2 * n * k).view(n, 2 * k)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "generation_labels": generation_labels,
        "text_input_ids": tokenized["input_ids"],
        "text_attention_mask": tokenized["attention_mask"],
        "attribute_index": torch.arange(n),
        "category_index": torch.arange(n, 2 * n),
        "neg_attribute_index": negatives[:, :k],
        "neg_category_index": negatives[:, k:],
        **images,
    }


@pytest.mark.parametrize("load_in_4bit", [False, True], ids=["lora", "qlora"])
@pytest.mark.parametrize("architecture", PROCESSORLESS_ARCHITECTURES)
def test_stage1_step_below_the_processor(architecture, load_in_4bit, triples):
    """Stage I's forward and loss on a family tested without its processor, with LoRA and with QLoRA (NF4 on CPU):
    finite terms, gradients only in LoRA (LLM and connector), the same loss for left- and right-padded generation
    sequences (positions from the mask)."""
    path = create_tiny_checkpoint(architecture)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
    )
    model = AutoModelForImageTextToText.from_pretrained(
        path, quantization_config=quantization if load_in_4bit else None
    )
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules()) == load_in_4bit
    tokenizer, image_processor = AutoTokenizer.from_pretrained(path), AutoImageProcessor.from_pretrained(path)
    backbone = get_backbone(model)
    model = ContrastiveAlignmentModel(get_peft_model(model, backbone.lora_config(dropout=0.0)))
    # Train mode, as a trainer step runs (in eval mode bitsandbytes repacks 4-bit weights for its CPU inference
    # kernel, which needs in_features >= its block size 64: the tiny ViT's 32 fails there, real models do not).
    model.train()
    # Rows of different aspect ratios: different grids and token counts in one batch.
    rows = [dict(triples[i], image=triples[i]["image"].resize(size)) for i, size in enumerate([(40, 30), (64, 16)])]
    loss = AttributeAugmentedContrastiveLoss(gather_across_processes=False)
    right = _stage1_batch_below_the_processor(tokenizer, image_processor, model, rows, "right")
    total, terms, outputs = stage1_objective(model, right, loss)
    assert all(torch.isfinite(value) for value in terms.values()) and outputs.generation_token_count > 0
    total.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all("lora_" in name for name in with_grad)
    connector = ("merger", "multi_modal_projector")
    assert any(part in name for name in with_grad for part in connector), "the connector gets no gradient"
    assert any("language_model" in name for name in with_grad)
    with torch.no_grad():
        left = _stage1_batch_below_the_processor(tokenizer, image_processor, model, rows, "left")
        torch.testing.assert_close(stage1_objective(model, left, loss)[1], stage1_objective(model, right, loss)[1])
