# The local Python base the project's Dockerfiles build FROM on machines without a registry
# (--build-arg PYTHON_IMAGE=local/python:3.11-bookworm): Debian bookworm's python3 (3.11) on the
# debootstrapped local/debian:bookworm. ca/ holds the build machine's extra CA certificates (a TLS proxy
# in front of the package registries); a real user's build never sees this image.
FROM local/debian:bookworm
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
    && update-ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
