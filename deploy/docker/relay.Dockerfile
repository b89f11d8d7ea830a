# syntax=docker/dockerfile:1
# The relay: pushes run changes from Redis to browsers over WebSocket and
# serves the dashboard; /function/* is forwarded to the gateway.
# Build from the repository root:
#   docker build -f deploy/docker/relay.Dockerfile -t optio-relay .
# Base images are pinned by version tag; deploy/README.md says how to pin
# them by digest as well.

FROM golang:1.26.8-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local
COPY optio/go.mod optio/go.sum ./optio/
COPY web/go.mod web/go.sum ./web/
RUN cd web && go mod download
COPY optio/ ./optio/
COPY web/ ./web/
RUN cd web && go build -trimpath -ldflags "-s -w" -o /out/optio-relay ./cmd/optio-relay

FROM alpine:3.22.2
RUN apk add --no-cache ca-certificates \
    && addgroup -S -g 10001 optio && adduser -S -u 10001 -G optio -H optio
COPY --from=build /out/optio-relay /usr/local/bin/optio-relay
USER 10001:10001
ENV RELAY_ADDR=0.0.0.0:8090
EXPOSE 8090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8090/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/optio-relay"]
