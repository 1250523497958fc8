# Huitou 回头客: the web service. Build: docker build -t huitou .
# Run with compose.yaml (PostgreSQL), or alone on the embedded SQLite:
#   docker run -p 8000:8000 -v huitou-data:/var/lib/huitou huitou
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Report charts draw Chinese labels with Noto Sans CJK (app/reports/charts.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 huitou \
    && useradd --system --uid 10001 --gid huitou --home-dir /srv/huitou --no-create-home \
        --shell /usr/sbin/nologin huitou \
    && mkdir -p /var/lib/huitou \
    && chown huitou:huitou /var/lib/huitou

WORKDIR /srv/huitou

# README.md* matches nothing when there is no README; the COPY still succeeds.
COPY pyproject.toml README.md* alembic.ini ./
COPY app ./app
COPY message_templates ./message_templates
COPY scripts ./scripts
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

# The installed package is not editable, so point it at the templates copied above;
# everything it writes (the SQLite file when no database URL is set) goes to the volume.
# Listening on 0.0.0.0 puts the web chat and upload page behind sign-in (登录网页版 in WeChat,
# or `docker exec … huitou chat 登录网页版 --shop SLUG`); set HUITOU_PUBLIC_URL to the address
# phones reach so sign-in, tap and report links work.
ENV HUITOU_TEMPLATES_DIR=/srv/huitou/message_templates \
    HUITOU_DATA_DIR=/var/lib/huitou \
    HUITOU_HOST=0.0.0.0 \
    HUITOU_PORT=8000

USER huitou
VOLUME ["/var/lib/huitou"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["huitou", "serve"]
