# Source this file (bash or zsh) to use ser_robot from this checkout: `source ./setup.bash`.
# It activates .venv (made by `make setup`), where the ROS 2 wheels, ser_robot_msgs and the
# ser-robot command live.
_ser_robot_root="$(cd "$(dirname "${BASH_SOURCE[0]:-${(%):-%x}}")" && pwd)"
if [ ! -x "$_ser_robot_root/.venv/bin/python" ]; then
  echo "ser_robot: no .venv yet; run 'make setup' in $_ser_robot_root first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$_ser_robot_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
unset _ser_robot_root
