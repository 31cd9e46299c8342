# syntax=docker/dockerfile:1
# ProgImage service image. libvips comes inside the pyvips-binary wheel (pyvips[binary]), so no
# Debian packages are installed: the slim base already has the libstdc++/libgcc it links to.
#
#   docker build -t progimage .
#   docker run --rm -p 8080:8080 -v progimage-data:/data progimage
#
# Every configuration key can be set from the environment: PROGIMAGE_<SECTION>__<KEY>, e.g.
#   -e PROGIMAGE_SIGNING__KEY=secret -e PROGIMAGE_SERVER__WORKERS=0 -e PROGIMAGE_AUTH__TOKENS='[t1]'
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROGIMAGE_SERVER__HOST=0.0.0.0 \
    PROGIMAGE_SERVER__PORT=8080 \
    PROGIMAGE_STORAGE__PATH=/data

# Only what the wheel needs; the sources are dropped once installed.
COPY pyproject.toml README.md /tmp/src/
COPY proxy /tmp/src/proxy
RUN pip install --no-cache-dir /tmp/src \
    && rm -rf /tmp/src \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin progimage \
    && mkdir /data \
    && chown 10001:10001 /data

VOLUME ["/data"]
USER 10001:10001
WORKDIR /data
EXPOSE 8080

# No curl in the slim image: Python asks /health itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PROGIMAGE_SERVER__PORT', '8080'), timeout=4)"]

CMD ["progimage", "serve"]
