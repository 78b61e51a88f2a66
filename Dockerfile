# Crypto Predict API image. Four stages:
#   train     installs requirements-train.txt and runs train.py: the model is made during the build,
#             and a run that refuses its data (exit 1) fails the build, so no image is produced;
#   api-deps  installs requirements-image.txt (hash-checked, no other dependency) into a virtual
#             environment that has no pip in it, and describes it in /opt/venv/sbom.cdx.json;
#   web       the page's files (web/) with a gzip copy beside each, made by scripts/precompress.py;
#   final     that environment, api.py with the artifact and serving packages, the models directory
#             and the page: no training code, no build script.
#
#   docker build -t crypto-predict .                                   # live Alpaca data
#   docker build --build-arg SOURCE=snapshot -t crypto-predict .       # offline: the bundled snapshot
#   docker run --rm -p 8080:8080 crypto-predict

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1


FROM base AS train
WORKDIR /build
# Dependencies first: this layer is reused until requirements-train.txt changes.
COPY requirements-train.txt ./
RUN python -m venv /opt/train \
    && /opt/train/bin/pip install --no-cache-dir -r requirements-train.txt
COPY data/ data/
COPY assets.toml train.py ./
COPY artifact/ artifact/
COPY training/ training/
# train.py writes one model and its metadata per asset of assets.toml here.
ENV MODEL_DIR=/build/models
# alpaca (default): live bars; snapshot: the bundled CSV, for builds without network access.
ARG SOURCE=alpaca
# A new value on every build (the pipeline passes the build time) makes this step run again:
# an unchanged command must not reuse a model trained on older data from the layer cache.
ARG BUILD_TIME=unset
RUN echo "training for the build of ${BUILD_TIME}" \
    && /opt/train/bin/python train.py --source "${SOURCE}"


FROM base AS api-deps
COPY requirements-image.txt /tmp/
# pip runs from the base image and installs into a venv created without pip, so the final image
# carries no installer and no wheel cache. It installs the listed wheels and nothing else: each
# is checked against its hash, and --no-deps keeps out what the list leaves out on purpose
# (prophet's plotting stack: requirements-image.txt says why). The API only predicts, so prophet's
# Stan model and the TBB library it runs with (they fit models), the libraries' test suites, type
# stubs, C sources and headers are never used there. Bytecode is compiled by importing every
# installed package once: the modules a start loads get their .pyc, the many it never loads
# (about 10 MB of .pyc) get none.
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir --no-compile --no-deps \
        --require-hashes --only-binary=:all: -r /tmp/requirements-image.txt \
    && rm -rf /opt/venv/lib/python3.11/site-packages/prophet/stan_model \
        /opt/venv/lib/python3.11/site-packages/prophet.libs \
    && find /opt/venv -depth -type d -name tests -exec rm -rf {} + \
    && find /opt/venv -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.h' \
        -o -name '*.c' \) -delete \
    && env -u PYTHONDONTWRITEBYTECODE /opt/venv/bin/python -c \
        "import importlib, importlib.metadata as m; [importlib.import_module(n) for n in m.packages_distributions()]"
# The SBOM: cyclonedx-py (requirements-sbom.txt) asks the environment's own interpreter for its
# path and lists every distribution there, as CycloneDX JSON; reproducible (no timestamp or serial
# number), so an unchanged environment gives the same file. The generator's own environment stays
# in this stage; the SBOM travels with /opt/venv into the final image.
COPY requirements-sbom.txt /tmp/
RUN python -m venv --without-pip /opt/sbom-tool \
    && pip --python /opt/sbom-tool/bin/python install --no-cache-dir --no-compile --no-deps \
        --require-hashes --only-binary=:all: -r /tmp/requirements-sbom.txt \
    && /opt/sbom-tool/bin/cyclonedx-py environment --of JSON --output-reproducible \
        --output-file /opt/venv/sbom.cdx.json /opt/venv


FROM base AS web
WORKDIR /web
COPY web/ ./
COPY scripts/precompress.py /usr/local/bin/
# The server sends these copies to clients that accept gzip: plotly.js travels at a third of its size.
RUN python /usr/local/bin/precompress.py /web


FROM base AS final
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=api-deps /opt/venv /opt/venv
COPY api.py ./
COPY artifact/ artifact/
COPY serving/ serving/
COPY --from=web /web/ web/
COPY --from=train /build/models/ models/
# Files stay owned by root: the server can read its code and models but never change them.
# With a read-only root filesystem, /tmp must be writable (--read-only --tmpfs /tmp): cmdstanpy,
# imported by prophet, makes its temporary directory there.
ENV PATH=/opt/venv/bin:$PATH \
    MODEL_DIR=/app/models \
    HOST=0.0.0.0 \
    PORT=8080
USER 10001:10001
EXPOSE 8080
# The slim base has no curl: the check is the image's own Python asking /health on $PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"]
# api.py handles SIGTERM itself (it runs as PID 1): the server closes its sockets and exits 0.
STOPSIGNAL SIGTERM
CMD ["python", "api.py"]

# Last, so that their new values on every build invalidate no cached layer. VERSION is X.Y.Z (the
# pipeline's release) or, for a build that is not a release, 0.0.0+<local>: clients generated from
# /openapi.json take it as their package version, and package tools refuse anything else.
ARG VERSION=0.0.0+dev
ARG REVISION=unknown
ARG BUILD_TIME=unknown
# The release the API reports in /openapi.json.
ENV APP_VERSION=${VERSION}
LABEL org.opencontainers.image.title="Crypto Predict API" \
      org.opencontainers.image.description="Prophet forecasts of daily crypto closes over HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_TIME}"
