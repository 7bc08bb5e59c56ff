#!/usr/bin/env bash
# Builds the agent ramdisk (`make initramfs`): u-root's mkuimage in busybox mode with ferrum-agent
# (started by the uinit script beside this file) and a few u-root core commands, the Debian
# kernel's modules named in modules.txt (with their dependencies and a trimmed modules.dep), and
# Debian's mdadm with the libraries it links.
# Writes OUT/vmlinuz, OUT/initramfs.cpio.gz and OUT/manifest.txt (versions and sha256 of every
# input and output); prints the sizes and fails when the gzip exceeds the budget.
#
# Usage: initramfs/build.sh [OUT]            (OUT defaults to initramfs/out)
# Env (all optional; README.md explains them):
#   KERNEL_PKG     Debian kernel package (default: what linux-image-amd64 depends on)
#   MODULES_FILE   module list (default initramfs/modules.txt); EXTRA_MODULES="a b" adds names
#   EXTRA_DEBS     Debian packages whose files EXTRA_FILES may name as deb:PKG/path
#   EXTRA_FILES    "SRC:DST ..." more files for the image (DST relative to /)
#   BUDGET_BYTES   gzip size budget (default 8 MiB)
#   SOURCE_DATE_EPOCH  exported to the tools; the archive itself has zero mtimes
# Needs: go, apt-get (package lists; `apt-get update` runs once when they are empty), dpkg-deb,
# depmod (kmod), readelf (binutils), gzip. Network: the Go module proxy and the Debian mirror on
# first run; later runs use OUT/cache and the module cache.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/initramfs
OUT=$(realpath -m "${1:-$HERE/out}")
CACHE=$OUT/cache

# Pinned builders: mkuimage (the version u-root v0.16.0 itself requires) is built in a scratch
# module because `go install` of it fails on Go >= 1.25 with its old golang.org/x/tools.
UROOT_VERSION=v0.16.0
MKUIMAGE_VERSION=v0.0.0-20250905073043-9a40452f5d3b
GOBUSYBOX_VERSION=v0.0.0-20250101170133-2e884e4509c7
XTOOLS_VERSION=v0.38.0
UROOT_CMDS=(init gosh dhclient ip ls cat mkdir dmesg mount umount poweroff shutdown sync shasum)
BUDGET_BYTES=${BUDGET_BYTES:-$((8 << 20))}
MODULES_FILE=${MODULES_FILE:-$HERE/modules.txt}

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
export CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
export GOROOT=${GOROOT:-$(go env GOROOT)}  # mkuimage runs $GOROOT/bin/go
t_start=$(date +%s)
mkdir -p "$OUT" "$CACHE/debs" "$CACHE/tools" "$CACHE/root"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
say() { echo "initramfs: $*"; }

# --- mkuimage -------------------------------------------------------------------------------
MKUIMAGE=$CACHE/tools/mkuimage-$MKUIMAGE_VERSION
if [ ! -x "$MKUIMAGE" ]; then
	say "building mkuimage $MKUIMAGE_VERSION"
	B=$(mktemp -d)
	(cd "$B" && go mod init local/mkuimage-build >/dev/null 2>&1 &&
		printf '//go:build tools\npackage tools\nimport _ "github.com/u-root/mkuimage/cmd/mkuimage"\n' >tools.go &&
		GOOS= GOARCH= go get github.com/u-root/mkuimage@$MKUIMAGE_VERSION \
			github.com/u-root/gobusybox/src@$GOBUSYBOX_VERSION golang.org/x/tools@$XTOOLS_VERSION 2>&1 | grep -v '^go: ' || true
		GOOS= GOARCH= go mod tidy 2>&1 | grep -v '^go: ' || true
		GOOS= GOARCH= go build -trimpath -o "$MKUIMAGE.tmp" github.com/u-root/mkuimage/cmd/mkuimage)
	rm -rf "$B"
	mv "$MKUIMAGE.tmp" "$MKUIMAGE"
fi
UROOT_DIR=$(go mod download -json github.com/u-root/u-root@$UROOT_VERSION | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$UROOT_DIR" ] || { echo "initramfs: u-root $UROOT_VERSION not in the module cache" >&2; exit 1; }

# --- Debian packages: fetched, never installed --------------------------------------------------
apt-cache show mdadm >/dev/null 2>&1 || $SUDO apt-get update -qq
KERNEL_PKG=${KERNEL_PKG:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')}
[ -n "$KERNEL_PKG" ] || { echo "initramfs: cannot resolve the kernel package (apt-cache depends linux-image-amd64)" >&2; exit 1; }
KVER=${KERNEL_PKG#linux-image-}
# fetch PKG → prints the directory it is unpacked in (CACHE/root/PKG_VERSION)
fetch() {
	local pkg=$1 ver dir deb
	ver=$(apt-cache policy "$pkg" | awk '/Candidate:/{print $2}')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || { echo "initramfs: no candidate for Debian package $pkg" >&2; return 1; }
	dir=$CACHE/root/${pkg}_${ver//:/%}
	if [ ! -d "$dir" ]; then
		deb=$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
		if [ -z "$deb" ]; then
			(cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v -e unsandboxed -e '^Get:' >&2 || true)
			deb=$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
			[ -n "$deb" ] || { echo "initramfs: apt-get download $pkg=$ver failed" >&2; return 1; }
		fi
		rm -rf "$dir.tmp" && dpkg-deb -x "$deb" "$dir.tmp" && mv "$dir.tmp" "$dir" || return 1
	fi
	echo "$pkg $ver $(sha256sum "$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_"*.deb | head -1)" | cut -c1-64)" >>"$MANIFEST.tmp"
	echo "$dir"
}
MANIFEST=$OUT/manifest.txt
{
	echo "# ferrum initramfs inputs and outputs (initramfs/build.sh)"
	echo "u-root $UROOT_VERSION"
	echo "mkuimage $MKUIMAGE_VERSION"
	echo "gobusybox $GOBUSYBOX_VERSION"
	echo "go $(go env GOVERSION)"
	echo "ferrum $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH"
} >"$MANIFEST.tmp"

KROOT=$(fetch "$KERNEL_PKG")
MDROOT=$(fetch mdadm)
LIBCROOT=$(fetch libc6)
# Libraries mdadm links besides libc (and theirs); EXTRA_DEBS add more.
declare -A EXTRA_ROOT=()
for p in libudev1 libcap2 ${EXTRA_DEBS:-}; do EXTRA_ROOT[$p]=$(fetch "$p"); done
MROOT=$KROOT/lib/modules/$KVER
[ -d "$MROOT" ] || MROOT=$KROOT/usr/lib/modules/$KVER
[ -f "$MROOT/modules.dep" ] || depmod -b "$(dirname "$(dirname "$(dirname "$MROOT")")")" "$KVER" 2>/dev/null || depmod -b "$KROOT" "$KVER"
[ -f "$MROOT/modules.dep" ] || { echo "initramfs: depmod did not write $MROOT/modules.dep" >&2; exit 1; }

STAGE=$OUT/stage
rm -rf "$STAGE" && mkdir -p "$STAGE/lib/modules/$KVER" "$STAGE/lib/modules-load.d"

# --- kernel modules -------------------------------------------------------------------------
mapfile -t WANT < <({ sed -e 's/#.*//' "$MODULES_FILE"; printf '%s\n' ${EXTRA_MODULES:-}; } | awk 'NF{print $1}')
declare -A have=()
load=()
for m in "${WANT[@]}"; do
	pat="/${m//[-_]/[-_]}\.ko(\.[a-z]+)?:"
	if line=$(grep -E "$pat" "$MROOT/modules.dep"); then
		load+=("$m")
		for f in $(echo "$line" | tr -d ':'); do have[$f]=1; done
	elif grep -qE "/${m//[-_]/[-_]}\.ko$" "$MROOT/modules.builtin"; then
		say "module $m is built into $KVER"
	else
		echo "initramfs: module $m is not in $KERNEL_PKG" >&2
		exit 1
	fi
done
for f in "${!have[@]}"; do
	mkdir -p "$(dirname "$STAGE/lib/modules/$KVER/$f")"
	cp "$MROOT/$f" "$STAGE/lib/modules/$KVER/$f"
	grep -E "^$f:" "$MROOT/modules.dep"
done | sort >"$STAGE/lib/modules/$KVER/modules.dep"
# u-root's kmodule.Probe parses modules.dep once per module it loads: the full file costs
# seconds under TCG, the trimmed one milliseconds.
cp "$MROOT/modules.builtin" "$STAGE/lib/modules/$KVER/modules.builtin"
printf '%s\n' "${load[@]}" >"$STAGE/lib/modules-load.d/ferrum.conf"

# --- mdadm and the libraries it links ---------------------------------------------------------
# add_elf SRC_ROOT PATH: copies PATH and, recursively, its interpreter and DT_NEEDED libraries,
# looked up in libc6, libudev1, libcap2 and EXTRA_DEBS.
add_elf() {
	local src=$1/$2 dst=$STAGE/$2 lib p found
	[ -e "$dst" ] && return 0
	mkdir -p "$(dirname "$dst")" && cp -L "$src" "$dst"
	p=$(readelf -l "$src" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
	[ -z "$p" ] || add_elf "$LIBCROOT" "${p#/}"
	for lib in $(readelf -d "$src" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		found=""
		for r in "$LIBCROOT" "${EXTRA_ROOT[@]}"; do
			for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
				if [ -e "$r/$d/$lib" ]; then add_elf "$r" "$d/$lib"; found=1; break 2; fi
			done
		done
		[ -n "$found" ] || { echo "initramfs: $2 needs $lib: add its Debian package to EXTRA_DEBS" >&2; return 1; }
	done
}
add_elf "$MDROOT" sbin/mdadm

# --- uinit: efivarfs, DHCP, then the agent -------------------------------------------------------
mkdir -p "$STAGE/bin" && cp "$HERE/uinit" "$STAGE/bin/uinit" && chmod 755 "$STAGE/bin/uinit"

# --- extra files ------------------------------------------------------------------------------
for spec in ${EXTRA_FILES:-}; do
	src=${spec%%:*} dst=${spec#*:}
	case $src in deb:*)
		p=${src#deb:}
		src=${EXTRA_ROOT[${p%%/*}]:?EXTRA_FILES names ${p%%/*}, which is not in EXTRA_DEBS}/${p#*/}
		;;
	esac
	if readelf -l "$src" 2>/dev/null | grep -q 'program interpreter'; then
		mkdir -p "$(dirname "$STAGE/${dst#/}")"
		add_elf "$(dirname "$src")" "$(basename "$src")" && mv "$STAGE/$(basename "$src")" "$STAGE/${dst#/}"
	else
		mkdir -p "$(dirname "$STAGE/${dst#/}")" && cp -rL "$src" "$STAGE/${dst#/}"
	fi
done

# --- the image --------------------------------------------------------------------------------
FILES=()
while IFS= read -r f; do FILES+=(-files "$STAGE/$f:$f"); done < <(cd "$STAGE" && find . -type f | sed 's|^\./||' | sort)
CMDS=(github.com/ferrumhq/ferrum/agent/cmd/ferrum-agent)
for c in "${UROOT_CMDS[@]}"; do CMDS+=(github.com/u-root/u-root/cmds/core/$c); done
# The agent's module and u-root's (from the module cache) as one workspace: the commands share
# one dependency graph, and the repository's go.mod stays free of u-root.
WORK=$OUT/work
mkdir -p "$WORK"
printf 'go 1.26.0\n\nuse (\n\t%s\n\t%s\n)\n' "$ROOT" "$UROOT_DIR" >"$WORK/go.work"
rm -f "$WORK/go.work.sum"
say "mkuimage: ferrum-agent + ${UROOT_CMDS[*]}; ${#load[@]} modules (${#have[@]} files); mdadm"
t0=$(date +%s)
if ! (cd "$WORK" && GOWORK=$WORK/go.work "$MKUIMAGE" -build=bb -initcmd=init -defaultsh=gosh \
	-uinitcmd= -skip-ldd -o "$OUT/initramfs.cpio.tmp" "${FILES[@]}" "${CMDS[@]}") >"$OUT/mkuimage.log" 2>&1; then
	tail -n 30 "$OUT/mkuimage.log" >&2
	exit 1
fi
t1=$(date +%s)
gzip -9 -n -c "$OUT/initramfs.cpio.tmp" >"$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
cpio_bytes=$(stat -c %s "$OUT/initramfs.cpio.tmp")
rm -f "$OUT/initramfs.cpio.tmp"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
echo "$KVER" >"$OUT/kver"
gz_bytes=$(stat -c %s "$OUT/initramfs.cpio.gz")
{
	cat "$MANIFEST.tmp"
	echo "modules ${load[*]}"
	(cd "$OUT" && sha256sum vmlinuz initramfs.cpio.gz)
} >"$MANIFEST" && rm -f "$MANIFEST.tmp"

mib() { awk -v b="$1" 'BEGIN{printf "%.2f MiB", b/1048576}'; }
say "kernel $KVER: $OUT/vmlinuz ($(mib "$(stat -c %s "$OUT/vmlinuz")"))"
say "cpio $(mib "$cpio_bytes"); mkuimage $((t1 - t0)) s, total $(($(date +%s) - t_start)) s"
say "size: $OUT/initramfs.cpio.gz = $gz_bytes bytes ($(mib "$gz_bytes")), budget $(mib "$BUDGET_BYTES")"
if [ "$gz_bytes" -gt "$BUDGET_BYTES" ]; then
	echo "initramfs: over the size budget by $((gz_bytes - BUDGET_BYTES)) bytes" >&2
	exit 1
fi
