"""What providers accept and how they fail: the structured-output capability table, the
classification of provider errors (retry, method refused, fatal), and redaction of secrets."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal
from urllib.parse import urlparse

from langchain_core.language_models import BaseChatModel

Method = Literal["json_schema", "function_calling", "json_mode"]
METHODS: tuple[str, ...] = ("json_schema", "function_calling", "json_mode")

CAPABILITIES: dict[str, str] = {
    "openai": "json_schema",
    "azure_openai": "json_schema",
    "openai_compatible": "json_schema",
    "openai_compatible_local": "json_mode",
    "anthropic": "function_calling",
    "google_genai": "function_calling",
    "google_vertexai": "function_calling",
    "bedrock": "function_calling",
    "mistralai": "function_calling",
    "groq": "function_calling",
    "fireworks": "function_calling",
    "together": "function_calling",
    "deepseek": "function_calling",
    "xai": "function_calling",
    "ollama": "json_schema",
    "offline": "function_calling",
}
"""The structured-output method each known provider supports best. ``openai_compatible_local``
is an OpenAI-compatible server on this machine (llama.cpp, Ollama, vLLM, LM Studio): JSON mode
is what they all accept (llama.cpp answers 500 to ``json_schema``)."""

FALLBACK: dict[str, str] = {
    "json_schema": "json_mode",
    "function_calling": "json_mode",
    "json_mode": "function_calling",
}
"""The one method tried when a server refuses the chosen one."""

_CLASSES = {
    "ChatOpenAI": "openai",
    "AzureChatOpenAI": "azure_openai",
    "ChatAnthropic": "anthropic",
    "ChatGoogleGenerativeAI": "google_genai",
    "ChatVertexAI": "google_vertexai",
    "ChatBedrock": "bedrock",
    "ChatBedrockConverse": "bedrock",
    "ChatMistralAI": "mistralai",
    "ChatGroq": "groq",
    "ChatFireworks": "fireworks",
    "ChatTogether": "together",
    "ChatDeepSeek": "deepseek",
    "ChatXAI": "xai",
    "ChatOllama": "ollama",
    "OfflineChatModel": "offline",
}
_LOCAL = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def base_url(model: BaseChatModel) -> str | None:
    """Where the model's requests go: its setting, else its client's (``OPENAI_BASE_URL``)."""
    url = getattr(model, "openai_api_base", None) or getattr(model, "base_url", None)
    if not url:
        url = getattr(getattr(model, "root_client", None), "base_url", None)
    return str(url) if url else None


def provider_of(model: BaseChatModel) -> str:
    """The capability-table key of a chat model (by class, and for OpenAI by base URL)."""
    for cls in type(model).__mro__:
        found = _CLASSES.get(cls.__name__)
        if found == "openai":
            url = base_url(model)
            host = urlparse(url).hostname if url else None
            if host is None or host.endswith("openai.com"):
                return "openai"
            return "openai_compatible_local" if host in _LOCAL else "openai_compatible"
        if found:
            return found
    return "unknown"


def default_method(model: BaseChatModel) -> str:
    return CAPABILITIES.get(provider_of(model), "function_calling")


def openai_like(model: BaseChatModel) -> bool:
    """Takes OpenAI's ``response_format`` and tool format as request arguments."""
    return provider_of(model) in (
        "openai",
        "azure_openai",
        "openai_compatible",
        "openai_compatible_local",
        "offline",
    )


def model_name(model: BaseChatModel) -> str:
    """The name usage is counted under (what ``usage.Tally`` sees as the requested model)."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


# --- secrets ---------------------------------------------------------------------------------

_SECRETS = [
    re.compile(r"\bsk-[A-Za-z0-9_\-*]{4,}"),  # OpenAI / Anthropic keys, also masked ones
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{10,}"),  # Google
    re.compile(r"\b(?:gsk|xai|pk|rk)_[A-Za-z0-9]{10,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
]


def redact(text: str) -> str:
    """Provider text with API keys, bearer tokens and key=value secrets replaced."""
    for pattern in _SECRETS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.re.groups else "") + "[redacted]",
            text,
        )
    return text


# --- errors ----------------------------------------------------------------------------------

ErrorKind = Literal["retry", "refused", "fatal", "other"]
_MENTIONS = {
    "json_schema": ("response_format", "json_schema", "schema"),
    "json_mode": ("response_format", "json_object"),
    "function_calling": ("tool", "function"),
}


def status_of(err: BaseException) -> int | None:
    status = getattr(err, "status_code", None)
    if status is None:
        status = getattr(getattr(err, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def message_of(err: BaseException) -> str:
    """The provider's own message, on one line."""
    body = getattr(err, "body", None)
    text = None
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        text = inner.get("message") if isinstance(inner, dict) else None
    text = str(text or err) or type(err).__name__
    return " ".join(text.split())[:300]


def classify(err: BaseException, method: str) -> ErrorKind:
    """``retry``: 429, 5xx, 408/409, connection errors, time-outs; ``refused``: the server does
    not take the structured-output method; ``fatal``: other 4xx (retrying cannot fix them);
    ``other``: not a provider error at all."""
    if isinstance(err, (TimeoutError, asyncio.TimeoutError)):
        return "retry"
    status = status_of(err)
    if status is None:
        name = type(err).__name__
        transport = any(w in name for w in ("Connection", "Connect", "Timeout", "Transport"))
        return "retry" if transport or isinstance(err, ConnectionError) else "other"
    text = message_of(err).lower()
    if status in (400, 404, 415, 422, 500, 501) and any(w in text for w in _MENTIONS[method]):
        return "refused"
    if status == 429 or status >= 500 or status in (408, 409):
        return "retry"
    return "fatal"


def describe(err: BaseException, timeout: float) -> str:
    if isinstance(err, (TimeoutError, asyncio.TimeoutError)):
        return f"no answer within {timeout:g}s (time-out)"
    status = status_of(err)
    prefix = f"HTTP {status}: " if status else f"{type(err).__name__}: "
    return redact(prefix + message_of(err))


def retry_after(err: BaseException) -> float | None:
    headers: Any = getattr(getattr(err, "response", None), "headers", None) or {}
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(key) if hasattr(headers, "get") else None
        try:
            if value is not None:
                return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None
