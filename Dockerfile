# The Tailor image of docker-compose.yml: the CLI, the scheduler's jobs and `tailor serve`
# (which runs bentos/service.py from /app). A serving-only image can also be built by
# BentoML (`bentoml build && bentoml containerize`), see bentofile.yaml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY src ./src
COPY bentos ./bentos
COPY bentofile.yaml ./
RUN pip install --no-cache-dir -c requirements/constraints.txt .
ENTRYPOINT []
CMD ["tailor", "--help"]
