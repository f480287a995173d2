"""Robot re-recording simulator: a corpus "played in the lab and recorded by the robot's ears".

The analogue of IEMOCAP-iCub (Lakomkin et al. 2018, seeds/004): loudspeaker, lab room (image
source method) with a two-ear head and head shadow, diffuse background noise, robot ego-noise,
household events, microphone self-noise and 16-bit quantisation; 16 kHz stereo output with the
same ids and labels. Configured by ``config/sim/icub_lab.yaml``.

- :mod:`~ser_robot.sim.config`: :func:`load_sim_config`, :class:`SimulatorConfig` (validated).
- :mod:`~ser_robot.sim.simulator`: :class:`Simulator` (one utterance in memory) and
  :func:`simulate_robot` (a manifest, in parallel, resumable).
- :mod:`~ser_robot.sim.conditions`: the held-out robot test condition and
  :func:`training_conditions`, what training augmentation may use.
- :mod:`~ser_robot.sim.loudspeaker`, :mod:`~ser_robot.sim.head`, :mod:`~ser_robot.sim.levels`:
  the stages' signal processing. :mod:`~ser_robot.sim.plot`: :func:`plot_rerecording`.
"""

from ser_robot.sim.conditions import (
    TrainingConditions,
    check_disjoint,
    condition_noise,
    lab_room_in_bank,
    sim_categories,
    training_conditions,
)
from ser_robot.sim.config import (
    CONDITIONS,
    SimulatorConfig,
    default_sim_config_path,
    load_sim_config,
)
from ser_robot.sim.plot import plot_rerecording
from ser_robot.sim.simulator import (
    SIM_VERSION,
    SimResult,
    Simulator,
    simulate_robot,
    stage_rng,
)

__all__ = [
    "CONDITIONS",
    "SIM_VERSION",
    "SimResult",
    "Simulator",
    "SimulatorConfig",
    "TrainingConditions",
    "check_disjoint",
    "condition_noise",
    "default_sim_config_path",
    "lab_room_in_bank",
    "load_sim_config",
    "plot_rerecording",
    "sim_categories",
    "simulate_robot",
    "stage_rng",
    "training_conditions",
]
