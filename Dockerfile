# batchrouter image: the CLI, the Celery workers, beat and Flower all run from this one image.
#   docker build -t batchrouter .            docker run --rm batchrouter  (prints the CLI help)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    BATCHROUTER_HOME=/app/.batchrouter

RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY --chown=app:app . /app
RUN pip install . && rm -rf build

# Workers need no root; /app (owned by app) is writable for beat's schedule file.
USER app
CMD ["batchrouter", "--help"]
