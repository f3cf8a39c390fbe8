# syntax=docker/dockerfile:1
# The Lifeboat worker as a container (README: "Running the worker as a service").
#   docker build -t lifeboat .
#   docker run -d --name lifeboat-worker --restart on-failure --stop-timeout 60 \
#     -v /etc/lifeboat:/etc/lifeboat:ro -v lifeboat-data:/var/lib/lifeboat lifeboat
# Any other command: docker run --rm -v /etc/lifeboat:/etc/lifeboat:ro lifeboat snapshots list
ARG NODE_VERSION=20
# restic from its own image (a static Go binary): Debian bookworm's 0.14 is older than the 0.17 Lifeboat needs.
ARG RESTIC_VERSION=0.18.1

FROM restic/restic:${RESTIC_VERSION} AS restic

# Debian, not Alpine: Temporal's native core bridge needs glibc.
FROM node:${NODE_VERSION}-bookworm-slim

# What the activities run: rsync and ssh (pulls from sources), pg_dump/psql and sqlite3 (dumps, restores, drills),
# tar, zstd and age (archives), acl/attr (getfacl/getfattr for restores); tini reaps the children of children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates rsync openssh-client zstd age postgresql-client sqlite3 tar acl attr tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=restic /usr/bin/restic /usr/local/bin/restic

WORKDIR /opt/lifeboat
# Dependencies first (a layer reused until the lock changes). cpu-features, an optional speed-up of ssh2, finds
# no compiler here and is skipped, as npm does for optional packages.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force
# Compile once here (dist/: the CLI, the worker and the pre-built workflow bundle), so neither TypeScript nor webpack
# runs when the container starts. src/ stays: the build is checked against it.
COPY tsconfig.json ./
COPY bin ./bin
COPY scripts/build.mjs ./scripts/build.mjs
COPY src ./src
RUN node scripts/build.mjs

# A dedicated user (uid/gid 10001, so files mounted from the host can be made readable to it); /var/lib/lifeboat is its
# home and the place for backupRoot (e.g. backupRoot: /var/lib/lifeboat/work). To keep file owners in captures of
# local files, run the container as root (--user root): see the README.
RUN groupadd --system --gid 10001 lifeboat \
 && useradd --system --uid 10001 --gid lifeboat --home-dir /var/lib/lifeboat --create-home --shell /usr/sbin/nologin lifeboat \
 && chmod 0700 /var/lib/lifeboat \
 && mkdir -p /etc/lifeboat
# MALLOC_ARENA_MAX=1: as in packaging/lifeboat-worker.service.
ENV NODE_ENV=production \
    HOME=/var/lib/lifeboat \
    LIFEBOAT_CONFIG=/etc/lifeboat/lifeboat.yaml \
    MALLOC_ARENA_MAX=1
USER lifeboat
WORKDIR /var/lib/lifeboat
VOLUME ["/var/lib/lifeboat"]
# SIGTERM (docker stop): the worker stops polling and lets running activities finish within its 30 s grace time;
# give it --stop-timeout 60 (compose: stop_grace_period: 60s) so Docker does not SIGKILL it at 10 s.
# --max-semi-space-size=2: as in packaging/lifeboat-worker.service.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=2", "/opt/lifeboat/bin/lifeboat.mjs"]
CMD ["worker"]
