# syntax=docker/dockerfile:1
# The connector: consumes the jobs queue and invokes the functions through
# the gateway; also fires schedule every minute (CONNECTOR_CRON).
# Build from the repository root:
#   docker build -f deploy/docker/connector.Dockerfile -t optio-connector .
# Base images are pinned by version tag; deploy/README.md says how to pin
# them by digest as well.

FROM golang:1.26.8-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local
# Module files first, so the download layer is cached across code changes.
COPY optio/go.mod optio/go.sum ./optio/
COPY connector/go.mod connector/go.sum ./connector/
RUN cd connector && go mod download
COPY optio/ ./optio/
COPY connector/ ./connector/
RUN cd connector && go build -trimpath -ldflags "-s -w" -o /out/optio-connector .

FROM alpine:3.22.2
RUN apk add --no-cache ca-certificates \
    && addgroup -S -g 10001 optio && adduser -S -u 10001 -G optio -H optio
COPY --from=build /out/optio-connector /usr/local/bin/optio-connector
USER 10001:10001
ENV CONNECTOR_HEALTH_ADDR=0.0.0.0:8091
EXPOSE 8091
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8091/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/optio-connector"]
