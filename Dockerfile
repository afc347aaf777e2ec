# probegate container image: a static musl binary from scratch.
#
#   docker build -t ghcr.io/probegate/probegate:0.1.0 .
#
# The same layout as .ci/build-image.sh, which builds it without Docker: one
# layer holding /probegate and image/rootfs/ (/etc/passwd and /etc/group naming
# the nonroot user 65532), no shell, run as 65532:65532.
#
# Build stage ---------------------------------------------------------------
FROM rust:1.95-bookworm AS build

# musl-tools provides musl-gcc for crates that compile C (e.g. ring);
# cmake and clang cover crates whose C build needs them (e.g. aws-lc-sys).
# Build-stage tools only, so they follow the base image's Debian release
# rather than pinned package versions (which bookworm updates would break).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake clang \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl

ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TERM_COLOR=never

WORKDIR /src
# .dockerignore keeps target/, .git and deployment files out of the context.
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && mkdir /rootfs \
 && cp -a image/rootfs/. /rootfs/ \
 && install -s -m 0755 target/x86_64-unknown-linux-musl/release/probegate /rootfs/probegate

# Runtime stage -------------------------------------------------------------
# Nothing but the binary and the user's name: no shell, no package manager.
# The API server's CA comes from the service account mount, so no CA bundle.
FROM scratch

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="probegate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/probegate/probegate" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# One COPY, one layer, as .ci/build-image.sh makes it.
COPY --from=build /rootfs/ /

# Numeric so that Kubernetes' runAsNonRoot check can verify it.
USER 65532:65532

# 8443 webhook (HTTPS), 8081 health (/healthz, /readyz), 9090 metrics.
EXPOSE 8443 8081 9090

ENTRYPOINT ["/probegate"]
CMD ["serve"]
