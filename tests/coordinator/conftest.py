"""Fixtures of the coordinator tests: the real U + MiniLM agent (loaded once per session), a copy
whose model calls are counted, and the coordinator app over it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from coordhelpers import Counting, make_app
from fastapi import FastAPI

SETUP_HINT = "run `make setup` (it builds the u, u-int8 and MiniLM ONNX files)"


@pytest.fixture(scope="session")
def u_agent() -> Any:
    """The real coordinator agent: u (f32) and all-MiniLM-L6-v2 f32, one thread each."""
    from agents.coordinator import load_u_agent
    from node.protocol.errors import ModelError

    try:
        return load_u_agent("u", threads=1)
    except ModelError as exc:
        pytest.fail(f"{exc}\n-> {SETUP_HINT}", pytrace=False)


@pytest.fixture
def counted(u_agent: Any) -> Any:
    """A UAgent sharing the session's sessions, with U and MiniLM calls counted."""
    from agents.coordinator import UAgent

    return UAgent(Counting(u_agent.model), Counting(u_agent.text_encoder), text_model_name=u_agent.text_model_name,
                  text_model_id=u_agent.text_model_id)


@pytest.fixture
def coordinator(counted: Any) -> Iterator[tuple[FastAPI, Any]]:
    app, service = make_app(counted, max_texts=8, max_text_chars=100)
    yield app, service
    service.close()
