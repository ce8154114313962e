from __future__ import annotations

import shutil
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from huggingface_hub.utils import filter_repo_objects


@dataclass
class Upload:
    repo_id: str
    folder: Path
    files: set[str]  # paths relative to `folder` that the upload would send
    kwargs: dict
    contents: dict[str, bytes]  # the bytes of each of `files`, read when the upload is made

    def card(self) -> ModelCard:
        return ModelCard(self.contents["README.md"].decode("utf-8"))

    def write_to(self, folder: Path) -> Path:
        """Lay the uploaded files out in `folder`, as a download of the repo would."""
        for name, data in self.contents.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder


@dataclass
class FakeHub:
    """Records `HfApi.create_repo` and `HfApi.upload_folder` calls instead of making them.

    The uploaded file set is computed with huggingface_hub's own pattern filter, as `upload_folder` does, and its
    bytes are kept (the folder may be a temporary one)."""

    created: list[dict] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)

    def create_repo(self, api: HfApi, repo_id: str, *, private: bool | None = None, exist_ok: bool = False, **kwargs):
        self.created.append({"repo_id": repo_id, "private": private, "exist_ok": exist_ok})
        self.created[-1] |= {key: kwargs[key] for key in ("repo_type", "space_sdk") if key in kwargs}
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, api: HfApi, *, repo_id: str, folder_path, run_as_future: bool = False, **kwargs):
        folder = Path(folder_path)
        paths = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
        files = set(
            filter_repo_objects(
                paths, allow_patterns=kwargs.get("allow_patterns"), ignore_patterns=kwargs.get("ignore_patterns")
            )
        )
        contents = {name: (folder / name).read_bytes() for name in files}
        self.uploads.append(Upload(repo_id, folder, files, kwargs, contents))
        commit = CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{len(self.uploads):040d}",
            commit_message=kwargs.get("commit_message") or "",
            commit_description="",
            oid=f"{len(self.uploads):040d}",
        )
        if not run_as_future:
            return commit
        future = Future()
        future.set_result(commit)
        return future


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    hub = FakeHub()
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kwargs: hub.create_repo(api, repo_id, **kwargs))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kwargs: hub.upload_folder(api, **kwargs))
    return hub


def publish_to_local_cache(cache_dir: Path, repo_id: str, folder: Path, files: set[str]) -> None:
    """Lay `files` of `folder` out as the Hub cache holds a downloaded repo, so offline loading finds `repo_id`."""
    revision = "0" * 40
    repo_cache = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_cache / "snapshots" / revision
    for name in files:
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / name, snapshot / name)
    (repo_cache / "refs").mkdir(parents=True, exist_ok=True)
    (repo_cache / "refs" / "main").write_text(revision)


FAKE_TOKEN = "hf_FAKEsecretTOKENfor1test2only3"
REPO_ROOT = Path(__file__).resolve().parents[2]


def leaks(uploads: list[Upload], tmp_path: Path, *local_paths: Path) -> list[str]:
    """'<file>: <secret>' for every uploaded file whose bytes hold the fake token or an absolute path of this
    machine (the test's tmp folder and pytest's base tmp folder, the home folder, the repository, `local_paths`)."""
    paths = [tmp_path, tmp_path.parents[1], Path.home(), REPO_ROOT, *local_paths]
    secrets = [FAKE_TOKEN, *(str(path) for path in paths)]
    return [
        f"{name}: {secret}"
        for upload in uploads
        for name, data in upload.contents.items()
        for secret in secrets
        if secret.encode("utf-8") in data
    ]
