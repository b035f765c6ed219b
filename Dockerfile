# One image for the worker (`python worker.py`) and the API (`nurture api`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY journeys ./journeys
COPY starter ./starter
COPY db ./db
COPY reporting ./reporting
COPY worker.py ./
RUN pip install --no-cache-dir . && useradd --system --uid 10001 nurture
USER nurture

EXPOSE 8000
CMD ["python", "worker.py"]
