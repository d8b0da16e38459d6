FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lockerlink ./lockerlink
COPY schemas ./schemas
COPY producers ./producers
COPY streams ./streams
COPY consumers ./consumers
COPY token_service ./token_service
COPY sandbox ./sandbox
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/lockerlink lockerlink
USER lockerlink
ENTRYPOINT []
CMD ["lockerlink", "--help"]
