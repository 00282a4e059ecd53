# pgrep production image. Not built on the development machines (no Docker engine there);
# see README "Docker".
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# Dev dependencies (TypeScript) are needed to build; install scripts are not (the embedded
# PostgreSQL binaries are for tests only).
RUN npm ci --ignore-scripts
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
USER node
ENTRYPOINT ["node", "/app/bin/run.js"]
CMD ["--help"]
