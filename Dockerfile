# syntax=docker/dockerfile:1
# Multi-stage build: a static vigil binary on Debian slim with nmap.
# Run it with the capabilities nmap needs for SYN/UDP scans:
#   docker run --rm --cap-add NET_RAW --cap-add NET_ADMIN --network host \
#     -v $PWD:/work vigil scan --config /work/vigil.yaml
#
# The same image is a site agent (docs/agent.md): keep its state directory
# (key, credential, queue) on a volume, pass the token in the environment:
#   docker run -d --name vigil-agent --restart unless-stopped \
#     --cap-add NET_RAW --cap-add NET_ADMIN --network host \
#     -v vigil-agent:/var/lib/vigil-agent \
#     -e VIGIL_AGENT_TOKEN=vge1.... \
#     vigil agent --server https://vigil.msp.example:8443 --server-fingerprint AB:CD:...
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
 && useradd --system --uid 10001 --home-dir /var/lib/vigil --create-home vigil \
 && install -d -o vigil -g vigil -m 0700 /var/lib/vigil-agent
COPY --from=build /out/vigil /usr/local/bin/vigil
# nmap carries the raw-socket capabilities; tell vigil it may use them.
ENV VIGIL_NMAP_PRIVILEGED=1
USER vigil
WORKDIR /var/lib/vigil
LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Security posture scanner for multi-location medical spas: vigil scan, vigil serve, and the site agent (vigil agent --server URL; state in /var/lib/vigil-agent)" \
      org.opencontainers.image.documentation="https://github.com/vigilhq/vigil/blob/main/docs/agent.md" \
      org.opencontainers.image.source="https://github.com/vigilhq/vigil"
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["help"]
