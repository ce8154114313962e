"""`finedefics push-adapter`: publish a trained adapter to the Hub with a Finedefics model card.

    finedefics push-adapter --adapter outputs/idefics2-8b/stage1 --repo-id your-hf-user/finedefics-idefics2-8b-stage1 \\
        --dataset_name your-hf-user/finedefics-fgvr --eval_report outputs/evaluation/report.json

The card (the uploaded README.md) gives the base model, the training data, the LoRA and training hyper-parameters
(from adapter_config.json and finedefics_training.json; the pickled training_args.bin is never loaded, since
unpickling can run code), the evaluation table and the citation. Only what loading needs is uploaded, and the
adapter folder is left unchanged. A stage II adapter (trained on the base with the stage I adapter merged in) is
uploaded with its stage I adapter in the repo's `stage1/` subfolder, or with the merged base (`stage1-merged/`, a
full model) given `--upload_merged_base`:

    finedefics push-adapter --adapter outputs/idefics2-8b/stage2 --repo-id your-hf-user/finedefics-idefics2-8b \
        --model_name_or_path HuggingFaceM4/idefics2-8b

Load the published adapter with `hf_finedefics.modeling.load_finedefics_model("<repo id>")`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.scripts import run


@dataclass
class PushAdapterArguments:
    adapter: str = field(metadata={"help": "Adapter folder written by `finedefics stage1` or `stage2`."})
    repo_id: str = field(metadata={"help": "Hub model repository to publish to, e.g. your-hf-user/finedefics."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    eval_report: str | None = field(
        default=None, metadata={"help": "report.json written by `finedefics evaluate`: its table goes on the card."}
    )
    eval_model: str | None = field(
        default=None, metadata={"help": "This model's name in --eval_report, when the report holds several."}
    )
    license: str | None = field(
        default=None,
        metadata={"help": "License of the card (a Hub license id, e.g. apache-2.0); default: the base model's."},
    )
    dataset_name: list[str] | None = field(
        default=None, metadata={"help": "Training dataset(s), Hub ids linked from the card (several allowed)."}
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of the model the adapter goes on, when the adapter records a local folder; for a stage "
            "II adapter, of the original base its stage I adapter was merged into. Written into the uploaded "
            "adapter_config.json, the local one is left as it is."
        },
    )
    stage1_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Stage II only: folder or Hub id of the stage I adapter, when the one its merged base records "
            "has moved."
        },
    )
    upload_merged_base: bool = field(
        default=False,
        metadata={
            "help": "Stage II only: upload the merged base (base + stage I, a full model) instead of the stage I "
            "adapter, so loading merges nothing."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Existing branch to push to (default: main)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    commit_message: str = field(default="Upload Finedefics adapter", metadata={"help": "Commit message."})


def make_parser() -> TrlParser:
    return TrlParser((PushAdapterArguments,), prog="finedefics push-adapter")


def main(args: PushAdapterArguments) -> None:
    from hf_finedefics.hub import push_adapter

    url = push_adapter(
        args.adapter,
        args.repo_id,
        base_model=args.model_name_or_path,
        datasets=args.dataset_name,
        evaluation_report=args.eval_report,
        evaluation_model=args.eval_model,
        license=args.license,
        stage1_adapter=args.stage1_adapter,
        upload_merged_base=args.upload_merged_base,
        private=args.private,
        revision=args.revision,
        token=args.token,
        commit_message=args.commit_message,
    )
    print(f"Uploaded {args.adapter} to {args.repo_id}: {url}")


if __name__ == "__main__":
    run(make_parser, main)
