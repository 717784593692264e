# The tpmon image: the worker (default) and every other tpmon command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY streams ./streams
COPY tpmon ./tpmon
COPY rules ./rules
RUN pip install . && useradd --create-home tpmon && mkdir -p /app/.tpmon && chown tpmon /app/.tpmon
USER tpmon

# The worker listens on every address of the container, so it starts only with a web configuration that
# authenticates (mount one and set TPMON_WEB_CONFIG: TLS and basic authentication, docs/SECURITY.md), or
# with TPMON_INSECURE_WEB=1 on a network where anyone who reaches the port may read customers' journeys
# (docker-compose.yml's local stack).
ENV TPMON_WEB_HOST=0.0.0.0 TPMON_RULES=/app/rules
EXPOSE 6066
ENTRYPOINT ["tpmon"]
CMD ["worker"]
