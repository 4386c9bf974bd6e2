# One image for the user-code server, webserver and daemon (docker-compose.yml).
FROM python:3.11-slim
ENV DAGSTER_HOME=/opt/dagster/home PIP_NO_CACHE_DIR=1
WORKDIR /opt/agentscaler
# the sandbox's jail (bubblewrap namespaces + seccomp); the container needs user namespaces allowed
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap libseccomp2 \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY agentscaler_dagster ./agentscaler_dagster
# torch from PyPI like every other dependency (its Linux wheel carries the CUDA libraries, so the same image
# trains on a GPU node); pinned first, as scripts/setup.sh does
RUN pip install torch==2.13.0 && pip install .
RUN mkdir -p $DAGSTER_HOME
COPY docker/dagster.yaml docker/workspace.yaml $DAGSTER_HOME/
