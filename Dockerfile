# The tokengine image used by docker-compose.kafka.yml (workers, API, topic creation).
FROM python:3.11-slim
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
RUN pip install --no-cache-dir -e .
ENV TOKENGINE_DATA_DIR=/var/lib/tokengine
EXPOSE 6066
CMD ["tokengine", "worker"]
