"""The OpenAI-compatible API: ``/v1/models`` and ``/v1/chat/completions`` over agentwire tasks.

The last user message becomes a task (the model names the scenario), and its events become
the reply: LLM_PARTIAL chunks of the answering call as ``chat.completion.chunk`` deltas, the
final answer and the usage to close it, ``data: [DONE]`` to end it.
"""
