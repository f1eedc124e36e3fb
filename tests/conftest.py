"""Root fixtures. Keep small: feature-specific fixtures belong in sub-folder conftest files."""

from collections.abc import Iterator

import pytest

from tests.fakes.provider_server import FakeProvider


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    """One fake provider server (OpenAI / Azure / Anthropic wire formats) for the whole session."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    """The session fake provider, with scripts and recorded requests cleared for this test."""
    fake_provider_server.reset()
    yield fake_provider_server
