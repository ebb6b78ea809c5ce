# The chart's Redis image for the local cluster: Debian's redis-server (7.0) on local/debian:bookworm.
# The chart runs `redis-server /etc/redis/redis.conf` and its probes run /bin/sh with redis-cli. Debian's
# package leaves /etc/redis readable by its redis user only; the official image has no such directory, and
# the chart mounts its TLS files below it (the sentinels run as another user): opened to all, as there.
FROM local/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chmod 1777 /data \
    && chmod 0755 /etc/redis
USER 999:999
WORKDIR /data
CMD ["redis-server"]
