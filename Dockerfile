# The portal's image: web (gunicorn), Celery worker and beat all run from it.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY . .
RUN DEBUG=0 SECRET_KEY=collectstatic-only ALLOWED_HOSTS=build PORTAL_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput -v 0 \
 && useradd --system --uid 1000 portal && mkdir -p /app/var && chown portal /app/var
USER portal

EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
