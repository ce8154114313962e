"""`finedefics analyze`: the paper's representation analyses on a labelled dataset.

    finedefics analyze --model_name_or_path HuggingFaceM4/idefics2-8b --dataset_name data/pets --dataset_split test \\
        --output_dir outputs/analysis/idefics2
    finedefics analyze --model_name_or_path outputs/stage2 --dataset_name data/pets --dataset_split test \\
        --predictions outputs/eval/predictions/finedefics/pet-37.generation.jsonl --output_dir outputs/analysis/finedefics
"""

from __future__ import annotations

from pathlib import Path

from hf_finedefics.analysis.config import AnalysisArguments
from hf_finedefics.scripts import CommandParser, run
from hf_finedefics.trainer.model_config import LOADING_KEYS, FinedeficsModelConfig, unused_model_keys


def make_parser() -> CommandParser:
    return CommandParser(
        (AnalysisArguments, FinedeficsModelConfig), unused=unused_model_keys(LOADING_KEYS), prog="finedefics analyze"
    )


def main(args: AnalysisArguments, model_args: FinedeficsModelConfig) -> None:
    from hf_finedefics.analysis import run_analysis
    from hf_finedefics.data.loading import load_dataset_split, with_class_labels

    if args.predictions is not None and not Path(args.predictions).is_file():
        raise FileNotFoundError(
            f"--predictions {args.predictions} does not exist: `finedefics evaluate` writes "
            "<output_dir>/predictions/<model_name>/<dataset>.<scorer>.jsonl."
        )
    dataset = args.first_samples(load_dataset_split(args.dataset_name, args.dataset_config, args.dataset_split))
    probe_train = None
    if args.probe_train_split is not None:
        probe_train = load_dataset_split(args.dataset_name, args.dataset_config, args.probe_train_split)
    if probe_train is None:
        (dataset,) = with_class_labels(args.dataset_name, dataset)
    else:
        dataset, probe_train = with_class_labels(args.dataset_name, dataset, probe_train)
    model, processor = model_args.load(args.adapter)
    report = run_analysis(
        model,
        processor,
        dataset,
        args.output_dir,
        analyses=args.analyses_to_run(with_predictions=args.predictions is not None),
        probe_train_dataset=probe_train,
        predictions=args.predictions,
        **args.analysis_kwargs(),
    )
    print(f"Analyses written to {args.output_dir}: {', '.join(k for k in report if k not in ('figures',))}")


if __name__ == "__main__":
    run(make_parser, main)
