"""`finedefics push-dataset`: upload a folder written by `finedefics build-dataset` to a Hub dataset repo."""

from __future__ import annotations

import argparse

from dataset_builders.publish import push_dataset_folder


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="finedefics push-dataset", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="dataset folder (with README.md and one parquet folder per config)")
    parser.add_argument("repo_id", help="Hub dataset repository, e.g. username/finedefics-bird-200")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, help="branch to push to")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    parser.add_argument(
        "--no-create-repo", dest="create_repo", action="store_false", help="the repository already exists"
    )
    args = parser.parse_args(argv)
    url = push_dataset_folder(
        args.folder,
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        create_repo=args.create_repo,
    )
    print(f"Uploaded {args.folder} to {args.repo_id}: {url}")
