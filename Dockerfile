# The Orchestrator image: gunicorn with uvicorn workers on port 7070.
# Build: docker build -t orchestrator .    Run: see docker-compose.yml.
FROM python:3.11-slim

# HOST: in a container the published port arrives on the container's own
# interface, not on loopback; without ORCHESTRATOR_API_KEY (or
# ALLOW_UNAUTHENTICATED=true) the server then refuses to start.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=7070 \
    WEB_CONCURRENCY=2

WORKDIR /app

RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --home-dir /app --shell /usr/sbin/nologin orchestrator

# Dependencies in their own layer: a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-compile -r requirements.txt

COPY . .
# The admin's static files, collected once at build time and served by ServeStatic.
# collectstatic only needs settings to load, so a throwaway key will do.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R orchestrator:orchestrator /app

USER orchestrator

EXPOSE 7070

# No curl in slim images: ask /health with Python itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/health' % os.environ.get('PORT', '7070'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

# WEB_CONCURRENCY, PORT and the timeouts are read by orchestrator/gunicorn.conf.py.
CMD ["gunicorn", "orchestrator.asgi:application", "-c", "orchestrator/gunicorn.conf.py"]
