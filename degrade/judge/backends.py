"""The judge's backends: one registry by name, what a backend answers, and how one is built.

A backend takes conversations (lists of chat messages) and returns one :class:`Completion`
per conversation, in order. The registry names a class by its import path, so a backend's
dependencies (``httpx`` for the ``openai`` backend) load only when it is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

# name -> "module:Class"; a new backend is one module plus one line here and one YAML in conf/judge/backend/.
BACKENDS = {
    "local": "degrade.judge.local:LocalBackend",
    "openai": "degrade.judge.remote:OpenAIBackend",
}


@dataclass(frozen=True)
class Completion:
    """One answer of the judge model, or why there is none."""

    text: str | None  # None when there is no answer: ``error`` says why, ``raw`` holds a reply that was not one
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    transport_retries: int = 0  # calls repeated after a 429, a 5xx, a timeout or a dropped connection
    raw: str | None = None  # a reply that is not an answer (not a chat completion): a failed judgment keeps it


class Backend(Protocol):
    batch_size: int

    def complete(self, conversations: list[list[dict[str, str]]], schema: dict[str, Any]) -> list[Completion]:
        """One completion per conversation, at temperature 0, asking for JSON matching ``schema``."""
        ...

    def calls_in_parallel(self) -> int:
        """How many conversations run at once (a batch locally, concurrent requests remotely)."""
        ...


class Named(Protocol):
    """What choosing a backend reads of its :class:`~degrade.judge.config.BackendConfig` (which imports this
    registry to check a name, so this module does not import it)."""

    name: str


def make_backend(cfg: Named) -> Backend:
    """The backend registered under ``cfg.name``, built from its :class:`~degrade.judge.config.BackendConfig`."""
    module, _, cls = BACKENDS[cfg.name].partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)
