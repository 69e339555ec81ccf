# The Tailor jobs image (CLI and scheduler). The serving image is built by BentoML
# (`bentoml build && bentoml containerize`), see bentofile.yaml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY src ./src
RUN pip install --no-cache-dir -c requirements/constraints.txt .
ENTRYPOINT []
CMD ["tailor", "--help"]
