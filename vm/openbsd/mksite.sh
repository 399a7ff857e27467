#!/bin/sh
#
# vm/openbsd/mksite.sh installNN.iso SERVER ADMIN_KEY.pub: the set server
# for create-vm.sh --iso.  Under vm/openbsd/www it puts the release's sets
# copied from the install ISO (with bsdtar, from libarchive-tools, which
# reads ISO 9660), the site set siteNN.tgz (install.site and the committed
# source tree: git archive HEAD, so uncommitted changes are left out),
# index.txt, and install.conf with SERVER and the admin's ssh public key
# filled in.  SERVER is host or host:port as the VM reaches this host;
# on libvirt's default network that is 192.168.122.1.  Serve the result:
#
#	python3 -m http.server -b 192.168.122.1 -d vm/openbsd/www 80
#
# See vm/openbsd/README.  Untested here: there is no OpenBSD ISO on the
# build host.

set -eu
umask 022

usage() {
	echo "usage: mksite.sh installNN.iso host[:port] admin_key.pub" >&2
	exit 2
}

die() {
	echo "mksite.sh: $*" >&2
	exit 1
}

[ $# -eq 3 ] || usage
iso=$1
server=${2#http://}
keyfile=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

# The key goes into a line of the response file, so it must be one line,
# and a public one: a private key here would be served to anyone on the
# network.  Checked before the ISO is read, so that a mistake costs
# nothing.
[ -r "$keyfile" ] || die "cannot read the admin's public key $keyfile"
[ "$(grep -c . "$keyfile")" -eq 1 ] ||
    die "$keyfile: not an ssh public key (one line expected)"
key=$(grep . "$keyfile")
printf '%s\n' "$key" | grep -Eq '^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) AAAA[0-9A-Za-z+/]+={0,3}( [^[:cntrl:]]*)?$' ||
    die "$keyfile: not an ssh public key (want e.g. ~/.ssh/id_ed25519.pub)"
if command -v ssh-keygen >/dev/null 2>&1; then
	ssh-keygen -l -f "$keyfile" >/dev/null 2>&1 ||
	    die "$keyfile: ssh-keygen cannot read it as a public key"
fi

# What install.sub's install_http() accepts as "HTTP Server", less the
# scheme (http:// is added: there is no https here).
case $server in
''|*[!A-Za-z0-9.:_-]*) die "bad server $2: want host or host:port" ;;
esac

for q in 'HTTP Server' 'Server directory' 'Public ssh key for user admin'; do
	grep -q "^$q = " "$here/install.conf" ||
	    die "$here/install.conf has no \"$q\" line"
done

git -C "$top" rev-parse -q --verify HEAD >/dev/null ||
    die "$top is not a git checkout with a commit: the site set takes HEAD"
[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] ||
    echo "mksite.sh: uncommitted changes in $top stay out of the site set" >&2

[ -r "$iso" ] || die "cannot read $iso"
command -v bsdtar >/dev/null 2>&1 ||
    die "bsdtar not found (apt-get install libarchive-tools)"

version=$(bsdtar -tf "$iso" |
    sed -En 's|^(\./)?([0-9]+\.[0-9])/amd64/bsd\.rd$|\2|p' | head -1)
[ -n "$version" ] || die "no N.N/amd64/bsd.rd in $iso: not an install ISO"
v=$(echo "$version" | tr -d .)
dir=$here/www/pub/OpenBSD/$version/amd64
rm -rf "$here/www"
mkdir -p "$dir"
bsdtar -xf "$iso" -C "$here/www/pub/OpenBSD" "$version/amd64"
chmod -R u+w,go+rX "$here/www"

# The installer untars sets at / with -xzphf: every member keeps its
# mode and owner.  So the set holds only install.site and the source
# directory, owned by root (uid and gid 0: root and wheel), never ./ or
# usr/ themselves, which would take the mode and owner of this stage.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
mkdir -p "$stage/usr/local/src/smarthostd"
(cd "$top" && git -c tar.umask=022 archive HEAD) |
    tar -xf - -C "$stage/usr/local/src/smarthostd"
[ -f "$stage/usr/local/src/smarthostd/Makefile" ] ||
    die "git archive HEAD gave no source tree"
install -m 0755 "$here/site/install.site" "$stage/install.site"
tar --format=ustar --owner=0 --group=0 --numeric-owner \
    -czf "$dir/site$v.tgz" -C "$stage" install.site usr/local/src/smarthostd
(cd "$dir" && ls -l > index.txt)

# awk reads the key from the environment, where no character of it is
# special, unlike in a sed replacement.
KEY=$key SERVER=$server VERSION=$version V=$v awk '
/^HTTP Server = / { print "HTTP Server = http://" ENVIRON["SERVER"]; next }
/^Server directory = / {
	print "Server directory = pub/OpenBSD/" ENVIRON["VERSION"] "/amd64"
	next
}
/^Public ssh key for user admin = / {
	print "Public ssh key for user admin = " ENVIRON["KEY"]
	next
}
{ gsub(/site[0-9]+\.tgz/, "site" ENVIRON["V"] ".tgz"); print }
' "$here/install.conf" > "$here/www/install.conf"
if grep -v '^#' "$here/www/install.conf" |
    grep -q 'REPLACE_WITH_ADMIN_SSH_KEY\|SETSERVER'; then
	rm -rf "$here/www"
	die "a placeholder of install.conf was not filled in"
fi

case $server in
*:*)	port=${server##*:} ;;
*)	port=80 ;;
esac
echo "mksite.sh: OpenBSD $version sets, site$v.tgz and install.conf" \
    "under $here/www; serve them with"
echo "	python3 -m http.server -b ${server%:*} -d $here/www $port"
