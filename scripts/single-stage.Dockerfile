# The same app built in one stage, kept only as the yardstick for the real Dockerfile:
# `make container-test` builds both and prints their sizes. Training happens in the image that
# serves, so everything training needs (alpaca-py and its dependencies, pip, train.py, the data
# snapshot) ships with the server. It is otherwise built with the same care (no pip cache,
# non-root user), so the difference is what the stages remove.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements-train.txt requirements-api.txt ./
RUN pip install --no-cache-dir -r requirements-train.txt -r requirements-api.txt
COPY . .
ENV MODEL_DIR=/app/models \
    MPLCONFIGDIR=/tmp/matplotlib
ARG SOURCE=alpaca
ARG BUILD_TIME=unset
RUN echo "training for the build of ${BUILD_TIME}" \
    && python train.py --source "${SOURCE}" \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
USER 10001:10001
EXPOSE 8080
CMD ["python", "api.py"]
