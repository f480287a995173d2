#!/usr/bin/env bash
# Set up ser_robot on a Debian machine, idempotently: system packages, .venv with pinned
# wheels (ROS 2 Kilted, torch), the ser_robot_msgs interface build, and the ser-robot command.
# Each step is skipped when its inputs have not changed since it last succeeded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMPS="$VENV/.ser_robot_stamps"
PYTHON="${PYTHON:-python3.11}"
APT_PACKAGES=(cmake make g++ git pulseaudio pulseaudio-utils libasound2-plugins libportaudio2
              libsndfile1 espeak-ng flite festival festvox-kdlpc16k sound-theme-freedesktop)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- 1. system packages -------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  missing+=(python3.11 python3.11-venv python3.11-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
  if [ "$(id -u)" -eq 0 ]; then
    log "installing system packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${cmd[@]}"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    log "installing system packages with sudo: ${missing[*]}"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive "${cmd[@]}"
  else
    echo "ser_robot needs these Debian packages, and this user cannot install them:" >&2
    echo "    sudo apt-get update && sudo ${cmd[*]}" >&2
    echo "Run that command (as an administrator), then run make again." >&2
    exit 1
  fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=/usr/bin/python3.11

# --- 2. virtual environment with pinned wheels --------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
mkdir -p "$STAMPS"
req_hash=$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMPS/requirements" 2>/dev/null)" != "$req_hash" ]; then
  log "installing Python packages (ROS 2 wheels, torch)"
  "$VENV/bin/python" -m pip install -q --no-cache-dir --upgrade pip
  # One resolution for everything that needs torch (silero-vad does), so no other torch is
  # installed first and replaced. With a GPU, PyPI's CUDA build instead of a CPU build on disk.
  torch_env=()
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    log "GPU found: torch's CUDA build from PyPI (several GB)"
    torch_env=(PIP_FIND_LINKS="$(mktemp -d)")
  fi
  env "${torch_env[@]}" "$VENV/bin/python" -m pip install -q --no-cache-dir -r "$ROOT/requirements/ros.txt" \
    -r "$ROOT/requirements/base.txt" -r "$ROOT/requirements/torch.txt"
  "$VENV/bin/python" -m pip install -q --no-cache-dir -r "$ROOT/requirements/cluster.txt" -c "$ROOT/requirements/base.txt" \
    -c "$ROOT/requirements/torch.txt"
  "$VENV/bin/python" -m pip install -q --no-cache-dir -r "$ROOT/requirements/test.txt" -c "$ROOT/requirements/base.txt" \
    -c "$ROOT/requirements/torch.txt"
  echo "$req_hash" > "$STAMPS/requirements"
  rm -f "$STAMPS/msgs"
fi

# --- 3. ser_robot_msgs, built with CMake against the wheels, installed into the venv -------
msgs_hash=$(cat "$ROOT"/ser_robot_msgs/CMakeLists.txt "$ROOT"/ser_robot_msgs/package.xml \
                "$ROOT"/ser_robot_msgs/msg/*.msg | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMPS/msgs" 2>/dev/null)" != "$msgs_hash" ]; then
  log "building ser_robot_msgs"
  "$VENV/bin/python" "$ROOT/scripts/fix_ros_wheel_cmake.py"
  rm -rf "$ROOT/build/ser_robot_msgs"
  mkdir -p "$ROOT/build"
  (
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    cmake -S "$ROOT/ser_robot_msgs" -B "$ROOT/build/ser_robot_msgs" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$VENV/bin/python" \
      > "$ROOT/build/ser_robot_msgs.log" 2>&1 || { cat "$ROOT/build/ser_robot_msgs.log"; exit 1; }
    cmake --build "$ROOT/build/ser_robot_msgs" -j "$(nproc)" >> "$ROOT/build/ser_robot_msgs.log" 2>&1 \
      || { tail -50 "$ROOT/build/ser_robot_msgs.log"; exit 1; }
    cmake --install "$ROOT/build/ser_robot_msgs" >> "$ROOT/build/ser_robot_msgs.log" 2>&1
  )
  echo "$msgs_hash" > "$STAMPS/msgs"
fi

# --- 4. ser_robot on the venv's path, and the ser-robot command ---------------------------
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$ROOT" > "$site/ser_robot_source.pth"
# the guard matters: worker processes started with "spawn" re-run this file as __mp_main__
cat > "$VENV/bin/ser-robot" <<WRAP
#!$VENV/bin/python
import sys
from ser_robot.cli import main
if __name__ == "__main__":
    sys.exit(main())
WRAP
chmod +x "$VENV/bin/ser-robot"
log "ready: source ./setup.bash, then run ser-robot --help"
