# syntax=docker/dockerfile:1
#
# The operator image:
#   docker build -t juju-secrets-operator:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
# The image runs `juju-secrets-operator run`; the flags come from the Helm chart (or
# `docker run IMAGE run --help`).

# Build stage. rust-toolchain.toml is not copied: this image's 1.95 toolchain is the pinned
# one, and rustup would otherwise download the exact pin plus rustfmt and clippy.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace members: the operator builds the Juju client crate; the others are only
# read so that the workspace resolves (the operator binary links no emulator code).
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin juju-secrets-operator \
    && install -D -m 0755 target/release/juju-secrets-operator /out/juju-secrets-operator

# Runtime stage: the binary links glibc (not static), so distroless "cc" (glibc, libgcc,
# CA certificates, no shell) rather than "static". Its "nonroot" user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="juju-secrets-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages Juju user secrets, grants and secret backends declaratively" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/juju-secrets-operator /usr/local/bin/juju-secrets-operator
USER 65532:65532
# /metrics, /healthz, /readyz (set METRICS_ADDR=0.0.0.0:8080 to reach them from outside).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/juju-secrets-operator"]
CMD ["run"]
