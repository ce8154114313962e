"""What the embedded default's world base perceives and knows, on the synthetic test split.

    python benchmarks/world_base.py --world-seed 0 --world max_steps=500

Builds (or reuses from the cache) the world base of `--world-seed` with the world settings of the embedded recipe
(or `--recipe`), overridden by `--world key=value`, then prints its attribute perception (values ranked by
likelihood, and picked by letter), its text knowledge, the spread of the embeddings stage I starts from (attribute
descriptions of the training images and category names: mean cosine across and within classes) and its zero-shot
accuracy on the 4-way category questions with the three scorers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from dataset_builders.sources.synthetic import generate_synthetic_fgvr, synthetic_categories, write_synthetic_fgvr
from hf_finedefics.embeddings import encode_texts
from hf_finedefics.evaluation import load_mc_items, score_items, summarize_results
from hf_finedefics.evaluation.scoring import GenerationScorer, LikelihoodScorer, NameLikelihoodScorer
from hf_finedefics.modeling import load_finedefics_model
from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config
from hf_finedefics.world import ensure_world_base
from hf_finedefics.world.perception import embedding_spread, perception_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", help="Run recipe whose world and synthetic data it reads (default: the embedded).")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--world", nargs="*", default=[], help="WorldPretrainingConfig overrides, key=value.")
    parser.add_argument("--rebuild", action="store_true", help="Pretrain again even if cached.")
    args = parser.parse_args()

    config = load_run_config(args.recipe, world_seed=args.world_seed)
    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.world)}
    config.world = {**config.world, **overrides}
    run = FinedeficsRun(config)
    started = time.perf_counter()
    base = ensure_world_base(run.synthetic, run.world, rebuild=args.rebuild)
    print(f"world base {base} ready in {time.perf_counter() - started:.0f} s")
    model, processor = load_finedefics_model(str(base))
    model.eval()
    test = generate_synthetic_fgvr(run.synthetic)["test"]
    categories = synthetic_categories(run.synthetic)
    images = [image.convert("RGB") for image in test["image"]]
    report = perception_report(
        model,
        processor,
        images,
        test["attributes"],
        run.synthetic.attribute_values,
        categories,
        run.synthetic.superclass,
    )
    print(json.dumps(report, indent=1))

    train = generate_synthetic_fgvr(run.synthetic)["train"]
    descriptions = encode_texts(model, processor, train["attribute_description"]).numpy()
    names = encode_texts(model, processor, [category.name for category in categories]).numpy()
    spread = {
        "attribute descriptions": embedding_spread(descriptions, train["label"]),
        "category names": embedding_spread(names, range(len(categories))),
    }
    print("embedding spread (mean cosine):", json.dumps(spread))

    with tempfile.TemporaryDirectory() as tmp:
        source = write_synthetic_fgvr(Path(tmp) / "source", run.synthetic)
        items = load_mc_items("imagefolder", source, source / "options_test.json")
        scorers = [
            LikelihoodScorer(model, processor),
            NameLikelihoodScorer(model, processor),
            GenerationScorer(model, processor, max_new_tokens=8),
        ]
        for scorer in scorers:
            results = score_items(
                scorer,
                items,
                Path(tmp) / f"{scorer.name}.jsonl",
                superclass=run.synthetic.superclass,
                seed=0,
                batch_size=32,
            )
            summary = summarize_results(results)
            print(
                f"zero-shot {scorer.name}: {summary['accuracy']:.1f} % (answers by position {summary['predicted_positions']})"
            )


if __name__ == "__main__":
    main()
