# patrol-dispatch: one image for every role — `patrol worker`, `patrol gateway`, `patrol migrate`,
# `patrol simulate`. Production points it at a real Kafka and PostgreSQL (PATROL_KAFKA_BOOTSTRAP,
# PATROL_DATABASE_URL), so the `embedded` extra (Tansu broker, embedded PostgreSQL) is left out.
#
#   docker build -t patrol-dispatch:0.1.0 .
#   docker run --rm patrol-dispatch:0.1.0 --help

FROM python:3.11-slim AS build
WORKDIR /src
# only what the wheel is built from: a change to tests or deploy files does not rebuild it
COPY pyproject.toml README.md LICENSE ./
COPY processors ./processors
COPY streams ./streams
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATROL_DATA_DIR=/tmp/patrol
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
# exactly the resolved versions of requirements.lock (`make lock`), checked against their hashes; no extras: the
# embedded broker and database are for development, the bench's and the dashboards' libraries for their verbs
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels /tmp/requirements.lock \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent patrol
# an unprivileged user; the worker writes nothing in the working directory (faust's directory, which stays
# empty, is a fresh one in the system temp dir), the embedded broker and database only under PATROL_DATA_DIR
WORKDIR /tmp
USER 10001
# 8080: `patrol gateway --port 8080`; 9464: a worker's Prometheus metrics (PATROL_METRICS_PORT)
EXPOSE 8080 9464
ENTRYPOINT ["patrol"]
CMD ["--help"]
