# cryptobot images, two targets of one file:
#   runtime (the default, last stage): the bot only — no research extra (no vectorbt, jupyter, optuna,
#     scikit-learn).  docker build -t cryptobot . && docker run -v cryptobot-data:/data cryptobot paper
#   research: the package with the research extra, for `python -m research …` (the compose `tune` workers).
#     docker build --target research -t cryptobot-research .
# BASE must provide python3 (3.11+) with venv; the default is the official slim image.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml constraints.txt ./
# Runtime dependencies only, pinned by constraints.txt, wheels only (a pin without a wheel for this Python
# fails at once instead of compiling or backtracking). An optional CA bundle (build secret `pip_cert`)
# serves networks whose PyPI access goes through an intercepting proxy; without it pip uses its own.
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -f /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    python3 -m venv /opt/venv \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: -c constraints.txt -r runtime.txt

FROM build AS research-build
# The research extra on top of the runtime venv, pinned and wheels only as above.
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -f /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['research']))" > research.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: -c constraints.txt -r research.txt

FROM ${BASE} AS research
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/cryptobot \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRYPTOBOT_NUMBA_CACHE_BASE=/opt/cryptobot/numba-cache \
    CRYPTOBOT_PIPELINE_DIR=/opt/cryptobot/pipelines \
    HOME=/work
RUN echo "cryptobot:x:10001:10001:cryptobot:/work:/usr/sbin/nologin" >> /etc/passwd \
    && echo "cryptobot:x:10001:" >> /etc/group \
    && mkdir -p /work && chown 10001:10001 /work
# LightGBM and XGBoost load the system OpenMP runtime (their wheels do not bundle it). Unpinned on purpose:
# the base release's current (security-updated) package, which a fixed version string would soon miss.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=research-build /opt/venv /opt/venv
WORKDIR /opt/cryptobot
COPY cryptobot ./cryptobot
COPY research ./research
COPY config ./config
COPY data/sample ./data/sample
# One real tuning trial on the shipped sample compiles every kernel a worker runs (the bot's and
# vectorbt's), so each new worker container starts its first trial at once instead of after a minute of JIT.
RUN python -m research tune --data data/sample/bitbank_BTC-JPY_4h_2018.csv.gz --study warmup --trials 1 \
        --storage journal:/tmp/warmup.journal \
    && rm /tmp/warmup.journal \
    && chown -R 10001:10001 /opt/cryptobot/numba-cache /opt/cryptobot/pipelines
USER 10001:10001
# Runs (runs/optuna, bundles, reports) live in the working directory, a volume.
WORKDIR /work
VOLUME ["/work"]
ENTRYPOINT ["python", "-m", "research"]
CMD ["--help"]

FROM ${BASE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/cryptobot \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRYPTOBOT_NUMBA_CACHE_BASE=/opt/cryptobot/numba-cache \
    CRYPTOBOT_PIPELINE_DIR=/opt/cryptobot/pipelines \
    CRYPTOBOT__ML__BUNDLE_DIR=/opt/cryptobot/models/production \
    HOME=/data
RUN echo "cryptobot:x:10001:10001:cryptobot:/data:/usr/sbin/nologin" >> /etc/passwd \
    && echo "cryptobot:x:10001:" >> /etc/group \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/cryptobot
COPY cryptobot ./cryptobot
COPY config ./config
COPY models/production ./models/production
COPY data/sample ./data/sample
# Compile every kernel the bot uses now, so the container's first decision does not pay the JIT; the
# cache stays readable (and the bot's own later writes go to the same directory, owned by the bot user).
RUN python -m cryptobot.warmup && chown -R 10001:10001 /opt/cryptobot/numba-cache /opt/cryptobot/pipelines
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CRYPTOBOT__HEALTH__PORT', '8080') + '/health', timeout=4)"]
ENTRYPOINT ["python", "-m", "cryptobot.live"]
CMD ["paper", "--state-dir", "/data/state"]
