from __future__ import annotations

import pytest

from tests.stream.support import stream_server


@pytest.fixture(scope="session")
def stream_app(django_db_setup, django_db_blocker, tmp_path_factory):
    """One uvicorn process with the hub probe for the stream tests; write with transaction=True."""
    with stream_server(tmp_path_factory.mktemp("stream")) as server:
        yield server
