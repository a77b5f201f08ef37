# wasmnet server image: `docker build -t wasmnet . && docker run -p 9000:9000 wasmnet`
# Flags go after the image name and replace the default ones, e.g.
#   docker run -p 9000:9000 -v "$PWD/policy.toml:/etc/wasmnet/policy.toml:ro" wasmnet \
#     --host 0.0.0.0 --port 9000 --policy /etc/wasmnet/policy.toml
#
# Two stages. The build stage installs Bun 1.4.5 from npm and the runtime dependencies of
# package.json + bun.lock (bin/_bun.sh), then compiles the server into one executable
# (bin/binary = `deno task binary`: `bun build --compile`). The final image is Debian slim (the
# executable needs glibc; Bun carries its own TLS root certificates) with that one file, run as a
# non-root user; no Node.js, npm, Bun, Deno, sources or test-only packages.

FROM node:22-bookworm-slim AS build
WORKDIR /src
# Bun and node_modules/ first: this layer is rebuilt only when the pins change.
COPY package.json bun.lock ./
COPY bin/_bun.sh bin/binary ./bin/
RUN bin/_bun.sh >/dev/null
COPY mod.ts ./
COPY src/ ./src/
RUN bin/binary

FROM debian:bookworm-slim
COPY --from=build /src/dist/wasmnet /usr/local/bin/wasmnet
# Debian's unprivileged `nobody`: the server needs no files of its own, and binds 9000 (> 1024).
USER nobody
EXPOSE 9000
ENV WASMNET_LOG=info
# The executable is PID 1 and handles SIGTERM (`docker stop`): it stops accepting, closes every
# session and socket, and exits 0.
STOPSIGNAL SIGTERM
# No curl in the image: bash's /dev/tcp asks /healthz, healthy while it answers "status":"ok" (it
# says "stopping" during shutdown). It asks port 9000; with another --port, pass --health-cmd.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9000 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '\"status\":\"ok\"' <&3"]
ENTRYPOINT ["/usr/local/bin/wasmnet"]
CMD ["--host", "0.0.0.0", "--port", "9000"]
