# The tokengine image of docker-compose.kafka.yml: every engine process (worker, sink,
# connectors) and job (topics, migrate, metrics-key) runs it with its own command.
# It holds no secret and no configuration: both come from the compose file at run time
# (TOKENGINE_* variables, /run/secrets files). deploy/ is not copied (deploy/secrets/ is
# never part of an image).
#
# The processes run as root in the container: compose mounts the secret files with the
# host's owner and mode 0600, which only root can read there.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENGINE_DATA_DIR=/var/lib/tokengine
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY tokengine tokengine
COPY topics topics
COPY avro avro
COPY streams streams
COPY sinks sinks
COPY connectors connectors
COPY api api
COPY standins standins
RUN pip install --no-cache-dir -e . && mkdir -p /var/lib/tokengine
# 6066: a worker's HTTP API and /metrics; 9464: /metrics of the sink and the connectors
EXPOSE 6066 9464
CMD ["tokengine", "worker"]
