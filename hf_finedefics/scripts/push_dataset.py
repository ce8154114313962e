"""`finedefics push-dataset`: upload a folder written by `finedefics build-dataset` to a Hub dataset repo.

finedefics push-dataset --dataset_name finedefics-fgvr --repo_id your-hf-user/finedefics-fgvr

Only the dataset card and the parquet shards it names are uploaded; the rest of the folder stays on the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.scripts import run


@dataclass
class PushDatasetArguments:
    dataset_name: str = field(
        metadata={"help": "Dataset folder written by `finedefics build-dataset` (README.md + one folder per config)."}
    )
    repo_id: str = field(metadata={"help": "Hub dataset repository, e.g. your-hf-user/finedefics-bird-200."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (default: main)."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    create_repo: bool = field(default=True, metadata={"help": "Create the repository if needed (False: it exists)."})


def make_parser() -> TrlParser:
    return TrlParser((PushDatasetArguments,), prog="finedefics push-dataset")


def main(args: PushDatasetArguments) -> None:
    from dataset_builders.publish import push_dataset_folder

    url = push_dataset_folder(
        args.dataset_name,
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        create_repo=args.create_repo,
    )
    print(f"Uploaded {args.dataset_name} to {args.repo_id}: {url}")


if __name__ == "__main__":
    run(make_parser, main)
