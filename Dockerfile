# llm-epp container: Node 24 runs the TypeScript sources directly (type
# stripping), so the image holds production dependencies and src/ only.
#
#   docker build -t llm-epp .
#   docker run -p 9002:9002 -p 9003:9003 -p 9090:9090 llm-epp --endpoints=10.0.0.5:8000
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (the `node` devDependency is not needed: the
# runtime image is Node 24). Then drop what is never loaded at run time: source
# maps, type declarations, @types packages, tests, docs. Measured on this
# dependency set: 117 MB → 56 MB.
RUN npm ci --omit=dev --ignore-scripts \
 && find node_modules -name '*.map' -delete \
 && find node_modules -name '*.d.ts' -delete \
 && rm -rf node_modules/@types \
 && find node_modules -type d \( -name test -o -name tests -o -name docs -o -name example -o -name examples \) -prune -exec rm -rf {} + \
 && find node_modules -iname '*.md' -delete \
 && npm cache clean --force

# Runtime: Google's distroless Node 24 (Debian 12: glibc, libstdc++, CA
# certificates and node; no shell, no npm). node:24-slim is ≈ 230 MB before
# the 56 MB of dependencies, which puts the image over its 250 MB budget;
# distroless Node (≈ 150 MB) keeps it near 210 MB.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY proto ./proto
COPY src ./src
COPY scorers ./scorers
# Non-root, uid/gid 1000 as the Kubernetes manifests expect (runAsUser: 1000).
USER 1000:1000
# 9002 ext_proc (+ health), 9003 gRPC health, 9090 Prometheus metrics.
EXPOSE 9002 9003 9090
# A 4 MB young generation keeps RSS ~110 MB lower under load at no measured
# throughput cost (bench/RESULTS.md). Arguments are llm-epp's flags.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=4", "src/main.ts"]
