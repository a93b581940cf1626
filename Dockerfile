# syntax=docker/dockerfile:1
#
# The commandes image: one self-contained binary on a slim Debian.
#
#   docker build -t commandes:local .
#   docker run --rm -p 8001:8001 -v commandes-data:/data commandes:local
#
# Without COMMANDES_DATABASE_URL pointing elsewhere it serves the SQLite demo
# from the /data volume and prints a generated API token on stdout. For
# PostgreSQL pass -e COMMANDES_DATABASE_URL=postgres://… and
# -e COMMANDES_API_TOKENS=… (see docker-compose.yml and deploy/kubernetes/).
#
# Needs BuildKit (the default builder since Docker 23) for the RUN --mount
# cache mounts below. The syntax line makes BuildKit fetch the current stable
# Dockerfile frontend; drop it on a builder without Docker Hub access (the
# built-in frontend supports everything used here).

############################################################################
# Build stage
############################################################################
# Same Debian release (bookworm, glibc 2.36) as the runtime stage: the binary
# is linked against glibc, so it must not be built on a newer glibc than the
# one it runs on.
FROM rust:1.95-bookworm AS builder

WORKDIR /src

# Only what `cargo build` reads: the manifest and lock file, the sources, and
# the files the binary embeds at compile time (sql/ through include_str!,
# assets/ through rust-embed). tests/, docs and config.toml are not needed,
# so editing them does not invalidate this layer.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY sql ./sql
COPY assets ./assets

# Dependency caching: instead of the "build a dummy main.rs first" trick, the
# cargo registry, the git checkouts and the target directory live in BuildKit
# cache mounts that survive between builds. A source change then recompiles
# only this crate; the ~200 dependencies stay compiled in the cache.
# sharing=locked: two concurrent builds on one builder wait for each other
# instead of corrupting the shared target directory.
# The target directory is a cache mount, so it is not part of the image
# layer: the binary is copied out of it in the same RUN.
# --locked: build exactly Cargo.lock, fail instead of silently updating it.
# (On a CI runner without a persistent BuildKit cache the mounts start empty
# every time; use a registry-backed cache, --cache-to/--cache-from, there.)
# The git revision for `--version`, `GET /` and the build_info metric
# (build.rs): the context has no .git, so it comes as a build argument.
ARG REVISION=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    COMMANDES_REVISION="${REVISION}" cargo build --release --locked \
 && install -D -m 0755 target/release/commandes /out/commandes

############################################################################
# Runtime stage
############################################################################
FROM debian:bookworm-slim

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""

# OCI image annotations (https://github.com/opencontainers/image-spec/blob/main/annotations.md).
# Pass --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ)
# from CI so an image can be traced back to its commit.
LABEL org.opencontainers.image.title="commandes" \
      org.opencontainers.image.description="The orders microservice: one binary, SQLite or PostgreSQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# The binary needs only glibc and libgcc_s, which every Debian image has
# (SQLite is bundled, TLS is rustls, the web assets are embedded).
# ca-certificates holds the roots trusted for PostgreSQL over TLS when no CA
# file is given. Nothing else: the HEALTHCHECK below is the binary itself,
# so there is no curl.
# Versions are not pinned: the stage follows bookworm's security updates at
# each rebuild, and pinned Debian versions stop existing when they are
# superseded.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid: Kubernetes' runAsNonRoot can only verify a
# numeric USER, and a fixed id makes the ownership of a mounted /data
# predictable across rebuilds.
RUN groupadd --system --gid 10001 commandes \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin commandes \
 && mkdir -p /data \
 && chown 10001:10001 /data

COPY --from=builder /out/commandes /usr/local/bin/commandes

# The defaults for a container:
# - listen on every interface (inside the container's network namespace), on
#   the port EXPOSEd below;
# - JSON logs on stderr whatever the terminal (log collectors parse them;
#   "auto" would switch to text under `docker run -t`);
# - the SQLite demo database on the /data volume (an absolute path: the
#   default sqlite://commandes.db is relative to the working directory).
#   Override COMMANDES_DATABASE_URL with a postgres:// URL for production.
ENV COMMANDES_HOST=0.0.0.0 \
    COMMANDES_PORT=8001 \
    COMMANDES_LOG_FORMAT=json \
    COMMANDES_DATABASE_URL=sqlite:///data/commandes.db

# The working directory is the data directory: a config.toml mounted there
# is read (settings are config.toml, then the environment, then flags), and
# nothing is ever written outside it. VOLUME keeps the SQLite file (and its
# -wal/-shm companions) out of the container's writable layer, so it survives
# `docker rm` and a new image. With PostgreSQL nothing is written at all, so
# the root filesystem can be read-only (Kubernetes: readOnlyRootFilesystem).
WORKDIR /data
VOLUME ["/data"]

USER 10001:10001

EXPOSE 8001

# What `docker run` and Compose use to mark the container healthy (Kubernetes
# ignores HEALTHCHECK and uses the probes of deploy/kubernetes/deployment.yaml
# instead). `commandes healthcheck` asks the server beside it, on the port
# and address of the same settings (COMMANDES_PORT, config.toml), and exits
# 0 or 1 with a one-line reason that `docker inspect` shows; it needs no
# shell and no curl. --live: /health/live does no I/O; /health/ready would
# turn a database outage into "unhealthy", which restarts nothing and only
# adds noise, so readiness is left to orchestrators that route traffic.
# Its own timeout (2 s) is under Docker's (3 s), so the reason is printed.
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/commandes", "healthcheck", "--live"]

# SIGTERM is what `docker stop` and Kubernetes send (it is also the default;
# stated so that it is not changed by accident): the service stops accepting,
# lets in-flight requests finish within server.shutdown_timeout_secs (10 s),
# closes its pool and exits 0. Keep `docker stop -t` / Compose
# stop_grace_period / terminationGracePeriodSeconds above that.
STOPSIGNAL SIGTERM

# Exec form, no shell: the binary is PID 1 and receives SIGTERM itself.
# CMD is the subcommand, so `docker run IMAGE migrate`, `… check`,
# `… healthcheck` or `… openapi` run the others, with the same environment.
ENTRYPOINT ["/usr/local/bin/commandes"]
CMD ["serve"]
