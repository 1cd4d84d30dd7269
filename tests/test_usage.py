"""Token accounting: counted per model, nested blocks add up, and no hook outlives its block."""

import asyncio

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tracers import context as tracer_context

from orchestrator_graph.usage import track_usage


def _model(tokens: int, name: str | None) -> GenericFakeChatModel:
    meta = {"model_name": name} if name else {}
    message = AIMessage(
        "ok",
        usage_metadata={"input_tokens": tokens - 1, "output_tokens": 1, "total_tokens": tokens},
        response_metadata=meta,
    )
    return GenericFakeChatModel(messages=iter([message] * 100))


def test_calls_and_tokens_per_model_also_without_a_model_name():
    with track_usage() as usage:
        _model(10, "m1").invoke("hi")
        _model(7, None).invoke("hi")
        _model(10, "m1").invoke("hi")
    assert usage.calls == {"m1": 2, "unknown": 1}
    assert usage.tokens == {"m1": 20, "unknown": 7}
    assert usage.total_tokens == 27


def test_a_block_inside_another_adds_to_both_and_tasks_inherit_it():
    async def main():
        with track_usage() as outer:
            await _model(5, "a").ainvoke("x")
            with track_usage() as inner:
                await asyncio.gather(
                    *(asyncio.ensure_future(_model(3, "b").ainvoke("y")) for _ in range(4))
                )
        return outer, inner

    outer, inner = asyncio.run(main())
    assert inner.total_tokens == 12 and inner.total_calls == 4
    assert outer.total_tokens == 17 and outer.total_calls == 5


def test_no_hook_is_left_behind_per_block():
    with track_usage():
        pass
    before = len(tracer_context._configure_hooks)  # private, read only: the leak's measure
    for _ in range(200):
        with track_usage():
            _model(1, "m").invoke("z")
    assert len(tracer_context._configure_hooks) == before


def test_a_call_without_usage_data_is_estimated_and_marked():
    from langchain_core.messages import AIMessage

    silent = GenericFakeChatModel(messages=iter([AIMessage("x" * 40)]))
    with track_usage() as usage:
        silent.invoke("y" * 40)
    (stats,) = usage.models.values()
    assert stats.calls == 1 and stats.tokens == stats.estimated_tokens == 20
