#!/usr/bin/env bash
# Make this host ready for vbench: install the missing system packages and start libvirt.
#
# Idempotent: installs only what is missing, starts only what is not running, and says what it does.
# Debian 12 / Ubuntu (apt-get) and openSUSE Leap / SLES (zypper).  Must run as root.
#
#   scripts/setup-host.sh            install + start daemons
#   scripts/setup-host.sh --check    only report what is missing (exit 1 if anything is)
#   scripts/setup-host.sh --test     also what only the test suite needs (nox's test sessions)
set -euo pipefail

say() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: error: %s\n' "$*" >&2; exit 1; }

# Daemons and ldconfig live in sbin, which a non-login root shell (sudo, su) may not have on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

CHECK_ONLY=0 WITH_TESTS=0
for arg in "$@"; do
  case $arg in
    --check) CHECK_ONLY=1 ;;
    --test) WITH_TESTS=1 ;;
    *) die "unknown option '$arg' (use --check and/or --test)" ;;
  esac
done

[[ -r /etc/os-release ]] || die "no /etc/os-release: cannot tell the distribution"
# shellcheck disable=SC1091
. /etc/os-release
FAMILY=""
case " ${ID:-} ${ID_LIKE:-} " in
  *" debian "*|*" ubuntu "*) FAMILY=debian ;;
  *" suse "*|*" opensuse "*|*" sles "*|*opensuse-leap*|*sles_sap*) FAMILY=suse ;;
  *) die "unsupported distribution '${ID:-?}': vbench's setup knows Debian/Ubuntu and openSUSE/SLES" ;;
esac

# need <probe> <debian package> <suse package>: the same table as vbench/packages.py (NEEDS), which
# tests/test_packages.py holds these lines to; change both together.
# probe: a command name, a path (starting with /; a glob is allowed) that must exist, or
# lib:SONAME for a shared library the dynamic linker knows (/usr/lib/<triplet> or /usr/lib64).
MISSING=()
need() {
  local probe=$1 deb=$2 suse=$3 pkg found=0
  pkg=$([[ $FAMILY == debian ]] && echo "$deb" || echo "$suse")
  if [[ $probe == lib:* ]]; then
    ldconfig -p 2>/dev/null | grep -qF "${probe#lib:} " && found=1
  elif [[ $probe == /* ]]; then
    compgen -G "$probe" >/dev/null && found=1
  else
    command -v "$probe" >/dev/null 2>&1 && found=1
  fi
  if (( ! found )); then MISSING+=("$pkg"); fi
  return 0
}

need libvirtd            libvirt-daemon-system  libvirt-daemon-qemu
need virsh               libvirt-clients        libvirt-client
need virt-host-validate  libvirt-clients        libvirt-client
need qemu-system-x86_64  qemu-system-x86        qemu-x86
need qemu-img            qemu-utils             qemu-tools
need /usr/sbin/dnsmasq   dnsmasq-base           dnsmasq
need pkg-config          pkg-config             pkg-config
need gcc                 gcc                    gcc
need objdump             binutils               binutils
need /usr/include/libvirt/libvirt.h  libvirt-dev  libvirt-devel
need xmllint             libxml2-utils          libxml2-tools
need '/boot/vmlinuz-*'   linux-image-amd64      kernel-default
need /bin/busybox        busybox-static         busybox
need fio                 fio                    fio
need stress-ng           stress-ng              stress-ng
need iperf3              iperf3                 iperf
need sockperf            sockperf               sockperf
need ip                  iproute2               iproute2
need /usr/sbin/qemu-ga   qemu-guest-agent       qemu-guest-agent
need /usr/bin/qemu-ga    qemu-guest-agent       qemu-guest-agent
need lz4                 lz4                    lz4
need umockdev-run        umockdev               umockdev
need pdftotext           poppler-utils          poppler-tools
need lib:libpango-1.0.so.0          libpango-1.0-0       libpango-1_0-0
need lib:libpangoft2-1.0.so.0       libpangoft2-1.0-0    libpango-1_0-0
# WeasyPrint subsets fonts with it (without it: a deprecation warning and bigger PDFs)
need lib:libharfbuzz-subset.so.0    libharfbuzz-subset0  libharfbuzz-subset0
# Python: venv + headers to build libvirt-python
need '/usr/include/python3*/Python.h'  python3-dev  python3-devel
python3 -c 'import ensurepip, venv' 2>/dev/null || MISSING+=("$([[ $FAMILY == debian ]] && echo python3-venv || echo python3)")

# qemu-ga: one of the two locations is enough
if command -v qemu-ga >/dev/null 2>&1 || [[ -x /usr/sbin/qemu-ga || -x /usr/bin/qemu-ga ]]; then
  MISSING=("${MISSING[@]/qemu-guest-agent}")
fi
# the busybox package on Debian is dynamically linked; the microguest needs the static one
if [[ $FAMILY == debian ]] && ! dpkg -s busybox-static >/dev/null 2>&1; then MISSING+=(busybox-static); fi

mapfile -t MISSING < <(printf '%s\n' "${MISSING[@]}" | sed '/^$/d' | sort -u)

# need_test <probe> <debian> <suse>: only with --test (the NEEDS rows with test_only=True)
TEST_MISSING=()
need_test() {
  (( WITH_TESTS )) || return 0
  local before=${#MISSING[@]}
  need "$@"
  if (( ${#MISSING[@]} > before )); then TEST_MISSING+=("${MISSING[-1]}"); unset 'MISSING[-1]'; fi
  return 0
}
# tests/test_fleet_e2e.py starts its own sshd on loopback addresses
need_test /usr/sbin/sshd  openssh-server  openssh-server
# headless Chromium opens the HTML report (tests/test_report_e2e.py)
need_test chromium        chromium        chromium

# Debian's postinst scripts start a package's service (openssh-server: sshd on port 22); a
# policy-rc.d answering 101 stops that while test packages install; an existing one is kept aside
# and put back.
POLICY=/usr/sbin/policy-rc.d POLICY_SAVED=""
restore_policy() {
  rm -f "$POLICY"
  if [[ -n $POLICY_SAVED ]]; then mv "$POLICY_SAVED" "$POLICY"; fi
  POLICY_SAVED=""
}

if (( ${#MISSING[@]} + ${#TEST_MISSING[@]} )); then
  ALL=("${MISSING[@]}" "${TEST_MISSING[@]}")
  if (( CHECK_ONLY )); then say "missing packages: ${ALL[*]}"; exit 1; fi
  [[ $(id -u) -eq 0 ]] || die "packages missing (${ALL[*]}): run this script as root"
  if [[ $FAMILY == debian ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if (( ${#MISSING[@]} )); then
      say "installing: ${MISSING[*]}"
      apt-get install -y -q --no-install-recommends "${MISSING[@]}"
    fi
    if (( ${#TEST_MISSING[@]} )); then
      say "installing for the tests: ${TEST_MISSING[*]} (their services not started)"
      if [[ -e $POLICY ]]; then POLICY_SAVED=$POLICY.vbench-saved; mv "$POLICY" "$POLICY_SAVED"; fi
      trap restore_policy EXIT
      printf '#!/bin/sh\nexit 101\n' >"$POLICY"
      chmod 755 "$POLICY"
      apt-get install -y -q --no-install-recommends "${TEST_MISSING[@]}"
      restore_policy
      trap - EXIT
      # the postinst also enabled sshd for the next boot: a test package must not add a service
      if [[ " ${TEST_MISSING[*]} " == *" openssh-server "* && "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; then
        systemctl disable --quiet ssh.service ssh.socket 2>/dev/null || true
      fi
    fi
  else  # zypper does not start services
    say "installing: ${ALL[*]}"
    zypper --non-interactive --quiet refresh
    zypper --non-interactive install --no-recommends "${ALL[@]}"
  fi
else
  say "all system packages present"
fi
(( CHECK_ONLY )) && exit 0

# --- daemons ---------------------------------------------------------------------------------
SOCK=/run/libvirt/libvirt-sock
if [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; then
  for unit in virtlogd libvirtd; do
    if ! systemctl is-active --quiet "$unit"; then say "starting $unit (systemctl)"; systemctl enable --now "$unit"; fi
  done
else
  if ! pgrep -x virtlogd >/dev/null; then say "starting virtlogd"; virtlogd -d; fi
  if ! pgrep -x libvirtd >/dev/null; then say "starting libvirtd"; libvirtd -d; fi
fi
for _ in $(seq 1 50); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || die "libvirtd did not open $SOCK; see its log (journalctl -u libvirtd, or /var/log/libvirt/libvirtd.log)"
virsh -q -c qemu:///system version >/dev/null 2>&1 || die "libvirtd is running but qemu:///system does not answer"
say "libvirtd is up (qemu:///system)"
