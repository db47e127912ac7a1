#!/bin/sh
# Builds the Shoal test images from Debian's busybox-static, without needing shoal or docker:
#   shoal-test/busybox:latest  (CMD sh)
#   shoal-test/httpd:latest    (CMD httpd -f -p 80 -h /www; same base layer + /www)
# Writes OUTDIR/busybox.tar and OUTDIR/httpd.tar (docker-archive + OCI layout, loadable by
# `shoal image load -i` and `docker load`), OUTDIR/both.tar (both images, base layer once)
# and OUTDIR/busybox-rootfs.tar (the bare rootfs, for `shoal image import`).
# Usage: deploy/images/build.sh OUTDIR
set -eu
OUT=${1:?usage: build.sh OUTDIR}
BUSYBOX=${BUSYBOX:-/bin/busybox}
if [ ! -x "$BUSYBOX" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "build.sh: installing busybox-static" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2
    else
        echo "build.sh: $BUSYBOX missing: install the busybox-static package" >&2
        exit 1
    fi
fi
PY=$(command -v python3 || true)
[ -n "$PY" ] || { echo "build.sh: python3 is required" >&2; exit 1; }
mkdir -p "$OUT"
exec "$PY" "$(dirname "$0")/build_images.py" "$BUSYBOX" "$OUT"
