from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from hf_finedefics.cli import main as cli
from hf_finedefics.modeling import adapter_base_model


def test_stage2_cli_from_a_saved_dataset(tiny_model_path, stage1_adapter, instructions, tmp_path):
    data_dir = tmp_path / "data" / "instructions"
    instructions.save_to_disk(data_dir)
    output_dir = tmp_path / "stage2"
    recipe = tmp_path / "stage2.yaml"
    recipe.write_text(
        f"dataset_name: {tmp_path / 'data'}\nstage1_adapter: {stage1_adapter}\nmax_steps: 1\n"
        "per_device_train_batch_size: 2\nwarmup_steps: 0\nreport_to: none\nuse_cpu: true\nbf16: false\n"
        "save_strategy: 'no'\n"
    )
    cli(["stage2", "--config", str(recipe), "--output_dir", str(output_dir), "--instruction_types", "open_set"])
    adapter_config = json.loads((output_dir / "adapter_config.json").read_text())
    # The merged base beside the adapter is recorded relative to it: the two move together.
    assert adapter_config["base_model_name_or_path"] == f"../{output_dir.name}-stage1-merged"
    assert Path(adapter_base_model(output_dir)) == output_dir.parent / f"{output_dir.name}-stage1-merged"
    lora_b = [w for name, w in load_file(output_dir / "adapter_model.safetensors").items() if "lora_B" in name]
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b)  # B starts at zero: one step moved it
