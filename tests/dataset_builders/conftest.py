from collections.abc import Iterator

import pytest

from dataset_builders.attributes import GenerationBackend, GenerationRequest, LocalBackend
from hf_finedefics.testing import create_tiny_checkpoint


class Interrupted(Exception):
    """Stands in for the build being killed."""


class RecordingBackend(GenerationBackend):
    """Wraps a real backend, records every request it is asked, and can stop after a number of them."""

    def __init__(self, inner: GenerationBackend, stop_after: int | None = None):
        self.inner = inner
        self.model_id = inner.model_id
        self.max_new_tokens = inner.max_new_tokens
        self.batch_size = inner.batch_size
        self.stop_after = stop_after
        self.requests: list[GenerationRequest] = []

    def iter_answers(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, str]]:
        if self.stop_after is not None and len(self.requests) + len(requests) > self.stop_after:
            raise Interrupted
        self.requests += requests
        return self.inner.iter_answers(requests)


@pytest.fixture(scope="session")
def idefics2_path() -> str:
    return str(create_tiny_checkpoint("idefics2"))


@pytest.fixture(scope="session")
def idefics2_backend(idefics2_path) -> LocalBackend:
    return LocalBackend(idefics2_path, max_new_tokens=8, batch_size=4, device="cpu")
