# syntax=docker/dockerfile:1
#
# otp-service image: the API only. Redis and Telnyx are reached through REDIS_URL and
# TELNYX_BASE_URL; every setting comes from the environment (see README).
#
#   docker build -t otp-service .
#   docker run --rm -p 8000:8000 -e REDIS_URL=... -e OTP_ADMIN_TOKEN=... otp-service
#
# Both stages use the same base image, so the virtualenv built in the first one finds the
# same interpreter at the same path in the second.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip

WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change,
# not on every source edit.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --requirement /tmp/requirements.txt

# Then the service itself, as a wheel (which carries the Lua scripts and the simulator's
# OpenAPI subset), installed without touching the dependencies above.
COPY otp_service ./otp_service
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/venv/bin/pip install --no-deps /tmp/wheels/otp_service-*.whl


FROM ${PYTHON_IMAGE} AS runtime

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed numeric uid, so orchestrators can check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 otp \
 && useradd --system --uid 10001 --gid otp --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin otp

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001

EXPOSE 8000

# slim has no curl; the standard library is enough. urlopen raises on anything but 2xx.
# If CMD is overridden to listen on another port, override this check too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

ENTRYPOINT ["otp-service"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
