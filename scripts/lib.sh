# scripts/lib.sh - shared by scripts/test and scripts/quickstart (sourced,
# not run): the Debian packages outpost needs, installing the missing ones,
# and the in-tree build (autoreconf, configure, make) redone only when
# something changed.

# The package lists are read by the scripts that source this file.
# shellcheck disable=SC2034
OUTPOST_BUILD_PKGS="build-essential autoconf automake pkg-config libevent-dev libssl-dev
	libsqlite3-dev libopendkim-dev libspf2-dev libinih-dev libc-ares-dev libcrypt-dev
	libsystemd-dev openssl swaks publicsuffix"
OUTPOST_TEST_PKGS="python3-pytest python3-aiosmtpd python3-dkim python3-dnslib python3-authres groff-base"
OUTPOST_BENCH_PKGS="postfix opendkim opendkim-tools"

outpost_msg() {
	printf '%s: %s\n' "${OUTPOST_SCRIPT:-outpost}" "$*" >&2
}

# outpost_as_root WHAT CMD... - run CMD as root: directly when we are,
# through sudo when there is one; otherwise say what to run as root
# (WHAT: why we need it) and fail.
outpost_as_root() {
	local what=$1
	shift
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		outpost_msg "$what and not root; as root run: $*"
		return 1
	fi
}

# outpost_install_packages PKG... - apt-get install the packages dpkg does
# not report as installed; apt-get update runs once, and only if needed.
outpost_install_packages() {
	local p missing=()
	if ! command -v dpkg >/dev/null 2>&1; then
		outpost_msg "no dpkg: not Debian; make sure these (or their equivalents) are installed: $*"
		return 0
	fi
	for p in "$@"; do
		dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	outpost_msg "installing missing packages: ${missing[*]}"
	outpost_as_root "missing packages" apt-get update &&
	outpost_as_root "missing packages" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y "${missing[@]}"
}

# outpost_configured_with FLAG... - was ./configure last run with exactly
# these arguments? (config.status remembers them, quoted for the shell.)
outpost_configured_with() {
	local recorded
	recorded=$(./config.status --config 2>/dev/null) || return 1
	local -a previous=()
	eval "previous=($recorded)" 2>/dev/null || return 1
	[ "${previous[*]-}" = "$*" ]
}

# outpost_build FLAG... - autoreconf when configure is missing or older than
# its sources, configure when not yet configured or the flags changed, then
# make. Runs in the repository root.
outpost_build() {
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
		outpost_msg "autoreconf -fi"
		autoreconf -fi || return 1
	fi
	if [ ! -f config.status ] || [ ! -f Makefile ] || [ configure -nt config.status ] ||
	    ! outpost_configured_with "$@"; then
		outpost_msg "./configure $*"
		./configure "$@" || return 1
	fi
	make -j"$(nproc 2>/dev/null || echo 2)"
}

# outpost_ensure_user - make sure the system account outpostd runs as
# ([server] user, default outpost; User= of outpost.service) exists: when
# started as root, outpostd drops to it after binding its ports. Made like
# systemd/outpost.sysusers would (home /var/lib/outpost, not created here;
# no login shell).
outpost_ensure_user() {
	getent passwd outpost >/dev/null 2>&1 && return 0
	outpost_msg "creating the system user outpost"
	outpost_as_root "no user outpost" useradd --system --user-group --home-dir /var/lib/outpost --no-create-home \
		--shell /usr/sbin/nologin --comment "outpost SMTP relay" outpost
}
