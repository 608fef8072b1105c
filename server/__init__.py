"""The HTTP app on top of the pgqueue library: a Starlette server that speaks
the LangGraph Platform API (``app.create_app``), and the full ``pgqueue``
command, whose ``serve`` and ``server`` live here (``cli``)."""
