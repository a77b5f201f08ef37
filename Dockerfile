# wasmnet server image: `docker build -t wasmnet . && docker run -p 9000:9000 wasmnet`
# Pass flags after the image name, e.g. `docker run -p 9000:9000 wasmnet --policy /etc/wasmnet.toml`.
FROM denoland/deno:2.9.6

WORKDIR /app
COPY deno.json deno.lock ./
COPY mod.ts policy.example.toml ./
COPY bin/ ./bin/
COPY src/ ./src/
# Only the runtime npm packages (hono, smol-toml, ipaddr.js, loglevel): deno.json's unstable
# "npm-lazy-caching" installs what mod.ts imports, not every package in deno.lock (test-only ones
# such as playwright-core stay out of the image).
RUN deno cache --frozen mod.ts

# Run as the image's non-root user, through the same launcher as a checkout (bin/wasmnet: the
# image's deno 2.9.6 on PATH, the server's permissions, exec so the server is PID 1 and gets SIGTERM).
USER deno
EXPOSE 9000
ENV WASMNET_LOG=info
ENTRYPOINT ["/app/bin/wasmnet"]
CMD ["--host", "0.0.0.0", "--port", "9000"]
