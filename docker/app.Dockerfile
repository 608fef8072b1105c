# The pgqueue image: server, worker, and one-shot `alembic upgrade head`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package build and Alembic need; .dockerignore keeps the rest
# (virtualenv, caches, benchmark results) out of the build context.
COPY pyproject.toml README.md alembic.ini ./
COPY pgqueue/ pgqueue/
COPY server/ server/
COPY migrations/ migrations/
COPY examples/ examples/
# In-tree build leftovers (build/, *.egg-info) are not needed at run time.
RUN pip install --no-cache-dir . \
    && rm -rf build *.egg-info

# Run unprivileged. /app stays root-owned: the worker only reads it.
RUN useradd --create-home --uid 10001 --user-group pgqueue
USER pgqueue

CMD ["pgqueue", "server", "--config", "examples/hello/langgraph.json", "--host", "0.0.0.0"]
