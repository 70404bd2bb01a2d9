# Multi-stage build: compile in the Rust image, run in a slim Debian as a non-root user.
#   docker build -t klynge .
#   docker run -p 8080:8080 -e KLYNGE__AUTH__WRITE_KEYS=change-me-please -v klynge-data:/data klynge serve --demo
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin klynge && strip target/release/klynge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data klynge \
    && mkdir /data && chown klynge /data
COPY --from=build /src/target/release/klynge /usr/local/bin/klynge
USER klynge
WORKDIR /data
ENV KLYNGE__SERVER__HOST=0.0.0.0 \
    KLYNGE__SERVER__PORT=8080 \
    KLYNGE__DATA__DIR=/data \
    KLYNGE__LOG__FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["klynge"]
CMD ["serve", "--demo"]
