# The kubetask image: `kubetask-operator` and `kubetask-gateway` (one image, the chart picks the
# command). Python slim, a virtualenv with `pip install .`, numeric non-root user 65532, nothing
# written outside /tmp (works with readOnlyRootFilesystem: true).
#
#   docker build -t ghcr.io/kubetask/kubetask:0.1.0 .
#
# Only pyproject.toml, README.md, operator/, api/ and handlers-images/sdk/ are copied; hack/kind-e2e.sh
# sends just those as the build context. The base is pinned by the digest of the python:3.12-slim
# multi-arch index, the same pin as handlers-images/base/Dockerfile. That digest could NOT be
# resolved where this file was written (no registry access): check it, and refresh it when you
# bump the base, with `crane digest python:3.12-slim` or
# `docker buildx imagetools inspect python:3.12-slim --format '{{json .Manifest.Digest}}'`.
# PYTHON_IMAGE swaps the base: any image with Python 3.11+ and its venv module (Debian:
# python3-venv). hack/build-realnode.sh builds this file FROM a Debian bookworm root filesystem
# made by mmdebstrap (docs/real-node.md).
ARG PYTHON_IMAGE=python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/kubetask
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator operator
COPY api api
COPY handlers-images/sdk handlers-images/sdk
# PIP_INSTALL_ARGS: empty here, so pip asks PyPI. Where a build has no network (buildah on the
# local real node, hack/build-realnode.sh; or `make images WHEELHOUSE=dir`), the wheels come from
# a directory mounted at /wheelhouse: "--no-index --find-links /wheelhouse".
ARG PIP_INSTALL_ARGS=""
# Byte-compile now: at run time the root filesystem is read-only.
RUN /opt/kubetask/bin/pip install ${PIP_INSTALL_ARGS} . \
 && /opt/kubetask/bin/python -m compileall -q /opt/kubetask

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/kubetask/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
COPY --from=build /opt/kubetask /opt/kubetask
USER 65532:65532
# 8000: gateway; 8080: operator /metrics; 8081: operator /healthz.
EXPOSE 8000 8080 8081
CMD ["kubetask-operator"]
