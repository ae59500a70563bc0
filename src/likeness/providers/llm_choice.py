"""Which language model a conversation thinks with (ADR 0012), from its persona's
``layers.llm`` and the operator's settings, first match wins:

1. the persona's ``base_url``: that OpenAI-compatible endpoint, a user's URL (its connections
   go to public addresses only, unless ``LIKENESS_LLM_ALLOWED_HOSTS`` names its host or the
   operator allows private URLs);
2. the operator's ``LIKENESS_LLM_BASE_URL`` (trusted, e.g. an Ollama on the same host), with the
   persona's ``model`` unless it names one of Tavus's hosted models (``tavus-…``);
3. SmolLM2-135M offline (providers/llm_local.py).

The persona's ``tools`` are offered to the model by the caller (``tools``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from likeness.config import Settings
from likeness.kit.safe_url import allowlisted
from likeness.providers import llm_local
from likeness.providers.base import Llm, Message
from likeness.providers.llm_local import LocalLlm
from likeness.providers.llm_openai import Endpoint, OpenAiLlm

HOSTED_PREFIX = "tavus-"  # tavus-gpt-oss, tavus-llama, …: models only Tavus serves


def choose(layer: Mapping[str, Any] | None, settings: Settings) -> Llm:
    """A new model for one conversation (persona ``layers.llm``, already validated)."""
    layer = layer or {}
    model = layer.get("model") or ""
    base_url = layer.get("base_url")
    if base_url:
        endpoint = Endpoint(
            base_url,
            model or settings.llm_model,
            api_key=layer.get("api_key"),
            headers=layer.get("headers") or {},
            extra_body=layer.get("extra_body") or {},
            default_query=layer.get("default_query") or {},
            trusted=settings.allow_private_urls
            or allowlisted(base_url, settings.llm_allowed_hosts),
        )
    elif settings.llm_base_url:
        endpoint = Endpoint(
            settings.llm_base_url,
            model if model and not model.startswith(HOSTED_PREFIX) else settings.llm_model,
            api_key=settings.llm_api_key,
            headers=settings.llm_headers,
            trusted=True,
        )
    else:
        return LocalLlm(
            threads=settings.llm_local_threads,
            max_tokens=settings.llm_local_max_tokens,
            fallback_line=settings.llm_fallback_line,
        )
    return OpenAiLlm(
        endpoint,
        first_token_timeout_s=settings.llm_first_token_timeout_s,
        timeout_s=settings.llm_timeout_s,
        fallback_line=settings.llm_fallback_line,
    )


async def warm(llm: Llm, opening: Sequence[Message]) -> None:
    """At a conversation's start, off the loop: the offline model loads and decodes the
    ``opening`` messages (the system prompt), so the first turn decodes only itself. An
    endpoint needs nothing. Raises ModelMissing when the offline model is not installed."""
    if isinstance(llm, LocalLlm):
        await asyncio.to_thread(llm.warm, opening)


def unavailable(layer: Mapping[str, Any] | None, settings: Settings) -> str | None:
    """Why a conversation of this persona would have no language model, or None: only the
    offline one can be missing (an endpoint's failures are the fallback line's business)."""
    if (layer or {}).get("base_url") or settings.llm_base_url:
        return None
    missing = llm_local.available()
    return f"No language model is available for a full persona: {missing}" if missing else None


def tools(layer: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The persona's OpenAI tools, to pass to ``Llm.reply`` (none for the offline model)."""
    found = (layer or {}).get("tools")
    return list(found) if isinstance(found, list) else []
