# rtmd on Debian 12: the package is built from this tree (make deb) in a
# bookworm stage, then installed with its dependencies in bookworm-slim.
#   docker build -t rtmd .
#   docker run -d --name rtmd -p 8443:8443 -v rtmd-data:/var/lib/rtmd \
#     -v "$PWD/rtmd.conf:/etc/rtmd/rtmd.conf:ro" rtmd
# docs/OPERATIONS.md ("Docker") says what to mount and how to back up.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps \
    && apt-get install -y -qq --no-install-recommends debhelper >/dev/null
COPY . .
RUN make deb

FROM debian:bookworm-slim
COPY --from=build /src/build/deb/rtmd_*.deb /tmp/
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends /tmp/rtmd_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/rtmd_*.deb
# The packaged config listens on loopback; in a container rtmd must listen on
# every interface of the container's own network namespace.
ENV RTMD_SERVER_LISTEN=0.0.0.0:8443@default
EXPOSE 8443
VOLUME /var/lib/rtmd
WORKDIR /var/lib/rtmd
USER rtmd
# SIGTERM (docker stop) drains: give it more than drain_s with --time/-t.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/rtmd"]
CMD ["--config", "/etc/rtmd/rtmd.conf"]
