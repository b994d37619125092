# The supportstream image: the CLI (`supportstream worker | connect http | connect imap |
# migrate | replay | demo ...`) on Python 3.11, pinned dependencies from pyproject.toml.
# Built by docker-compose.yml (build: .) and for deploy/k8s (push it as supportstream:<version>).
# The build stage is the full image: gcc and Python's headers compile the domain's hot modules
# with mypyc (setup.py, processors/native.py); the runtime stage stays slim and gets the built
# virtual environment, compiled modules included.
FROM python:3.11.10-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml setup.py README.md ./
COPY processors ./processors
COPY schemas ./schemas
COPY sinks ./sinks
COPY streams ./streams
COPY loadtest ./loadtest
# `supportstream --version` prints how the installed domain runs. Then the language model is
# decompressed into the image once (streams.model_cache), so that no process started from it
# spends the CPU doing that itself (loadtest/bench_language.py measures both ways); from / (in
# /src, `python -c` would import the sources beside it rather than what pip installed).
RUN python -m venv /opt/supportstream && /opt/supportstream/bin/pip install . \
    && /opt/supportstream/bin/supportstream --version \
    && cd / && /opt/supportstream/bin/python -c "import pathlib, streams.model_cache as m; \
m.load_model(pathlib.Path('/opt/supportstream/cache'))"

FROM python:3.11.10-slim-bookworm
# tini reaps children and forwards SIGTERM, so workers and connectors stop gracefully.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/supportstream --create-home supportstream
COPY --from=build /opt/supportstream /opt/supportstream
COPY examples /etc/supportstream/examples
ENV PATH=/opt/supportstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SUPPORTSTREAM_METRICS_PORT=9108 \
    SUPPORTSTREAM_CACHE_DIR=/opt/supportstream/cache \
    SUPPORTSTREAM_WAREHOUSE=/var/lib/supportstream/warehouse
USER supportstream
WORKDIR /var/lib/supportstream
EXPOSE 9108 8080
ENTRYPOINT ["/usr/bin/tini", "--", "supportstream"]
CMD ["--help"]
