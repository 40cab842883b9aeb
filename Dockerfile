# kube-healer: a static binary on a distroless base, running as a non-root user.
#   docker build -t kube-healer .
# Build stage: Alpine's Rust targets musl, so the binary is static (rustls with ring: no OpenSSL).
FROM rust:1.95-alpine AS build
# make: jemalloc (the allocator) is built from its C sources.
RUN apk add --no-cache musl-dev make
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kube-healer \
    && cp target/release/kube-healer /kube-healer

# Runtime stage: no shell, no package manager; uid 65532 matches the chart's securityContext.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /kube-healer /kube-healer
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/kube-healer"]
CMD ["run"]
