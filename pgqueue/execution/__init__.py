"""LangGraph execution: graphs from ``langgraph.json``, the executor that a
worker runs them with, the lease-fenced checkpointer, stream events and
webhooks. Meets the worker only at ``pgqueue.core.handler``."""
