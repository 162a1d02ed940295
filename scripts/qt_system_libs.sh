#!/usr/bin/env bash
# Checks that Qt's xcb platform plugin (PySide6's libqxcb.so) finds every system library it
# links to, as `ldd` reports them; pip cannot install those. Missing ones are mapped to their
# Debian/Ubuntu packages: as root they are installed with apt-get, otherwise the exact
# `apt-get install` line is printed and the script exits 3 (Qt's own message names the
# wrong library, e.g. libxcb-cursor0 when libxcb-icccm4 is missing).
#
#   bash scripts/qt_system_libs.sh [--check]   # report only (exit 3 when something is missing)
#   bash scripts/qt_system_libs.sh --install   # install as root, else print the line, exit 3
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/venv_path.sh"
MODE="${1:---check}"

[[ "$(uname -s)" == Linux ]] || exit 0

PLUGIN="$("$ARBORIST_VENV/bin/python" -c 'import os, PySide6
print(os.path.join(os.path.dirname(PySide6.__file__), "Qt", "plugins", "platforms", "libqxcb.so"))')"
if [[ ! -f "$PLUGIN" ]]; then
    echo "qt_system_libs: PySide6's xcb plugin is missing ($PLUGIN); reinstall PySide6" >&2
    exit 3
fi

# soname (as ldd prints it) -> Debian package
declare -A PACKAGE=(
    [libxcb-icccm.so.4]=libxcb-icccm4 [libxcb-keysyms.so.1]=libxcb-keysyms1
    [libxcb-cursor.so.0]=libxcb-cursor0 [libxkbcommon-x11.so.0]=libxkbcommon-x11-0
    [libxkbcommon.so.0]=libxkbcommon0 [libxcb-image.so.0]=libxcb-image0
    [libxcb-render-util.so.0]=libxcb-render-util0 [libxcb-xkb.so.1]=libxcb-xkb1
    [libxcb-shape.so.0]=libxcb-shape0 [libxcb-randr.so.0]=libxcb-randr0
    [libxcb-render.so.0]=libxcb-render0 [libxcb-shm.so.0]=libxcb-shm0
    [libxcb-sync.so.1]=libxcb-sync1 [libxcb-xfixes.so.0]=libxcb-xfixes0
    [libxcb-xinerama.so.0]=libxcb-xinerama0 [libxcb-xinput.so.0]=libxcb-xinput0
    [libxcb-util.so.1]=libxcb-util1 [libxcb-glx.so.0]=libxcb-glx0 [libxcb.so.1]=libxcb1
    [libX11-xcb.so.1]=libx11-xcb1 [libX11.so.6]=libx11-6 [libSM.so.6]=libsm6 [libICE.so.6]=libice6
    [libEGL.so.1]=libegl1 [libGL.so.1]=libgl1 [libOpenGL.so.0]=libopengl0 [libGLX.so.0]=libglx0
    [libfontconfig.so.1]=libfontconfig1 [libfreetype.so.6]=libfreetype6
    [libdbus-1.so.3]=libdbus-1-3 [libglib-2.0.so.0]=libglib2.0-0 [libgthread-2.0.so.0]=libglib2.0-0
)

missing_packages() {
    local soname pkgs=() unknown=()
    while read -r soname; do
        [[ -z "$soname" ]] && continue
        if [[ -n "${PACKAGE[$soname]:-}" ]]; then
            pkgs+=("${PACKAGE[$soname]}")
        else
            unknown+=("$soname")
        fi
    done < <(ldd "$PLUGIN" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
    if ((${#unknown[@]})); then
        echo "qt_system_libs: also missing (package unknown, see 'apt-file search'): ${unknown[*]}" >&2
    fi
    if ((${#pkgs[@]})); then
        printf '%s\n' "${pkgs[@]}" | sort -u | tr '\n' ' '
    fi
}

PKGS="$(missing_packages)"
if [[ -z "$PKGS" ]]; then
    exit 0
fi
LINE="apt-get install -y ${PKGS% }"
if [[ "$MODE" == --install && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "qt_system_libs: installing the Qt platform libraries: ${PKGS% }"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
    PKGS="$(missing_packages)"
    if [[ -n "$PKGS" ]]; then
        echo "qt_system_libs: still missing after apt-get: $PKGS" >&2
        exit 3
    fi
    exit 0
fi
echo "qt_system_libs: the GUI needs system libraries that Qt's xcb platform plugin links to; install them with:" >&2
echo "    sudo $LINE" >&2
exit 3
