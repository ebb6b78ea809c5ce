# The chart's Redis image for the local cluster: Debian's redis-server (7.0) on local/debian:bookworm.
# The chart runs `redis-server /etc/redis/redis.conf` and its probes run /bin/sh with redis-cli.
FROM local/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chmod 1777 /data
USER 999:999
WORKDIR /data
CMD ["redis-server"]
