# syntax=docker/dockerfile:1
# Multi-stage build: a static vigil binary on Debian slim with nmap.
# Run it with the capabilities nmap needs for SYN/UDP scans:
#   docker run --rm --cap-add NET_RAW --cap-add NET_ADMIN --network host \
#     -v $PWD:/work vigil scan --config /work/vigil.yaml
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vigil ./cmd/vigil

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nmap ca-certificates libcap2-bin \
 && setcap cap_net_raw,cap_net_admin,cap_net_bind_service+eip /usr/bin/nmap \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/vigil --create-home vigil
COPY --from=build /out/vigil /usr/local/bin/vigil
# nmap carries the raw-socket capabilities; tell vigil it may use them.
ENV VIGIL_NMAP_PRIVILEGED=1
USER vigil
WORKDIR /var/lib/vigil
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["help"]
