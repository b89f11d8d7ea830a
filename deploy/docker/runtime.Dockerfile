# syntax=docker/dockerfile:1
# The local runtime in one image: optio-up starts Prometheus and
# Alertmanager (autoscaling by invocation rate), the local
# provider (which runs the five functions as processes), the real OpenFaaS
# gateway, and the esstore when ES_URL is unset, then deploys stack.yml
# through the gateway. Redis, RabbitMQ, the connector and the relay run
# beside it (docker-compose.yml).
# Build from the repository root:
#   docker build -f deploy/docker/runtime.Dockerfile -t optio-runtime .
# Base images are pinned by version tag; deploy/README.md says how to pin
# them by digest as well.

FROM golang:1.26.8-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local
COPY optio/ ./optio/
COPY functions/ ./functions/
COPY local/ ./local/
COPY esstore/ ./esstore/
# The gateway builds in its own module (it needs a newer faas-provider than
# the local provider uses).
RUN cd local/gateway && go build -trimpath -ldflags "-s -w" -o /out/gateway github.com/openfaas/faas/gateway
RUN cd local && go build -trimpath -ldflags "-s -w" -o /out/ \
        ./cmd/optio-up ./cmd/optio-provider \
        ./cmd/optio-run ./cmd/optio-stop ./cmd/optio-status ./cmd/optio-schedule ./cmd/optio-process
RUN cd esstore && go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/optio-esstore

FROM prom/prometheus:v3.5.0 AS prometheus
FROM prom/alertmanager:v0.28.1 AS alertmanager

FROM alpine:3.22.2
RUN apk add --no-cache ca-certificates \
    && addgroup -S -g 10001 optio && adduser -S -u 10001 -G optio -h /var/lib/optio optio \
    && mkdir -p /var/lib/optio/state && chown -R optio:optio /var/lib/optio
COPY --from=prometheus /bin/prometheus /usr/local/bin/prometheus
COPY --from=alertmanager /bin/alertmanager /usr/local/bin/alertmanager
COPY --from=build /out/ /opt/optio/bin/
COPY stack.yml /opt/optio/stack.yml
WORKDIR /var/lib/optio
USER 10001:10001
ENV OPTIO_BIN_DIR=/opt/optio/bin \
    OPTIO_STATE_DIR=/var/lib/optio/state \
    OPTIO_STACK_FILE=/opt/optio/stack.yml \
    OPTIO_SERVICES_SCRIPT=none \
    OPTIO_PROMETHEUS_BIN=/usr/local/bin/prometheus \
    OPTIO_ALERTMANAGER_BIN=/usr/local/bin/alertmanager
VOLUME ["/var/lib/optio/state"]
# 8080: the OpenFaaS gateway (functions under /function/, API under /system/).
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/opt/optio/bin/optio-up"]
