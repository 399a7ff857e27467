#!/bin/sh
#
# vm/openbsd/mksite.sh ISO SETSERVER: the local set server for the
# OpenBSD path of create-vm.sh --iso.  It copies the sets from the
# install ISO (bsdtar, from libarchive-tools, reads ISO 9660), adds the
# site set (install.site and this source tree), writes index.txt and
# install.conf with SETSERVER (host:port as the VM sees it), under
# vm/openbsd/www; serve that directory with
#	python3 -m http.server -d vm/openbsd/www PORT
# Untested here: there is no OpenBSD ISO on the build host.

set -eu
[ $# -eq 2 ] || { echo "usage: mksite.sh installNN.iso host:port" >&2; exit 2; }
iso=$1
server=$2
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

version=$(bsdtar -tf "$iso" | sed -n 's|^\./*\([0-9]\.[0-9]\)/amd64/bsd\.rd$|\1|p' | head -1)
[ -n "$version" ] || { echo "mksite.sh: no N.N/amd64/bsd.rd in $iso" >&2; exit 1; }
v=$(echo "$version" | tr -d .)
dir=$here/www/pub/OpenBSD/$version/amd64
rm -rf "$here/www"
mkdir -p "$dir"
bsdtar -xf "$iso" -C "$here/www/pub/OpenBSD" "$version/amd64"
chmod -R u+w "$here/www"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/usr/local/src/smarthostd"
(cd "$top" && git archive HEAD) | tar -xf - -C "$stage/usr/local/src/smarthostd"
install -m 0755 "$here/site/install.site" "$stage/install.site"
tar -czf "$dir/site$v.tgz" -C "$stage" .
(cd "$dir" && ls -l > index.txt)

sed -e "s|^HTTP Server = .*|HTTP Server = $server|" \
    -e "s|^Server directory = .*|Server directory = pub/OpenBSD/$version/amd64|" \
    -e "s|site[0-9]*\.tgz|site$v.tgz|g" \
    "$here/install.conf" > "$here/www/install.conf"
echo "mksite.sh: sets for $version and site$v.tgz under $here/www"
