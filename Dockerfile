# The platform image: the head (`finone up`), Ray workers and the MLflow server all run it.
# Three stages: the platform itself, the web app built with the API types generated from that
# platform's OpenAPI document, and the platform again with the built app beside it.
FROM python:3.11-slim-bookworm AS platform

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FINONE_DATA_DIR=/data

RUN apt-get update \
    && apt-get install --yes --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# PyTorch's default wheel pulls CUDA; pass the CPU wheel index as a build arg for a slim image.
ARG TORCH_INDEX_URL=""
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install torch==2.13.0 --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install torch==2.13.0; \
    fi
COPY pyproject.toml README.md ./
COPY core ./core
COPY cluster ./cluster
COPY actors ./actors
COPY serve ./serve
COPY training ./training
# psycopg2 is for the MLflow server's Postgres backend store (MLflow's SQLAlchemy is synchronous).
# The compiler builds the order book extension (actors/_book.c) and leaves with its layer.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && pip install . psycopg2-binary \
    && apt-get purge --yes --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

FROM platform AS openapi
RUN finone openapi --output /openapi.json

FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
COPY --from=openapi /openapi.json ./openapi.json
RUN npm run build

FROM platform
COPY --from=web /web/dist ./web/dist
ENV FINONE_WEB_DIST=/app/web/dist
RUN useradd --create-home --uid 1000 finone \
    && mkdir -p /data /mlartifacts \
    && chown finone:finone /data /mlartifacts
USER finone

EXPOSE 8000 8265 6380 8080 5000
CMD ["finone", "up"]
