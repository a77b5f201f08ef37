# wasmnet server image: `docker build -t wasmnet . && docker run -p 9000:9000 wasmnet`
# Pass flags after the image name, e.g. `docker run -p 9000:9000 wasmnet --policy /etc/wasmnet.toml`.
FROM denoland/deno:2.9.6

WORKDIR /app
COPY deno.json deno.lock ./
COPY mod.ts policy.example.toml ./
COPY src/ ./src/
RUN deno cache --frozen mod.ts

# Run as the image's non-root user.
USER deno
EXPOSE 9000
ENV WASMNET_LOG=info
ENTRYPOINT ["deno", "run", "--frozen", "--cached-only", "--allow-net", "--allow-read", "--allow-env=WASMNET_LOG", "mod.ts"]
CMD ["--host", "0.0.0.0", "--port", "9000"]
