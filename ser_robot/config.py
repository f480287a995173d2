"""Node parameters: their specifications (defaults in one place) and the YAML that sets them.

``config/ser.yaml`` is a ROS 2 parameters file: one top-level key per node name, each with a
``ros__parameters`` mapping. The ``runner`` entry is read by ``ser-robot run`` and by
``launch/ser.launch.py`` to decide which nodes to start. Every value is validated against the
:class:`ParamSpec` of its node here, before any node starts (numbers finite and in range, topic
names valid, output folders creatable); the ROS nodes declare the very same specs as parameters
with descriptors and ranges (:mod:`ser_robot.ros.params`). The numeric options of the
``ser-robot`` commands that are not node parameters have their specs here too.

The YAML itself is read by :mod:`ser_robot.config_io`, the ground floor below every layer; this module sits
above ``audio/`` and ``features/``, whose choices it validates.
"""

from __future__ import annotations

import copy
import math
import os
import pathlib
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import yaml

from ser_robot.audio.channels import REDUCTIONS
from ser_robot.config_io import check_value, config_file, parse_key_values, read_yaml_mapping
from ser_robot.errors import ConfigError
from ser_robot.features.sets import FEATURE_SETS

__all__ = [
    "ParamSpec",
    "ParamValue",
    "NODE_PARAMS",
    "PLAY_RATE",
    "PLAY_WAIT_S",
    "RUN_DURATION",
    "NODE_KINDS",
    "SOURCE_NODES",
    "RunConfig",
    "load_config",
    "validate_node_params",
    "param_spec",
    "parse_overrides",
    "topic_name_problem",
    "namespace_problem",
    "default_config_path",
]

ParamValue = Union[bool, int, float, str, list]


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: name, default (whose type is the parameter's type), meaning, limits.

    Numbers must be finite; ``min``/``max`` (required) bound them, inclusive. ``choices`` bounds strings
    (or each item of a string list); ``check`` returns why a string (or item) is invalid, or ''
    when it is fine. ``read_only`` parameters cannot change after the node started.
    """

    name: str
    default: ParamValue
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = True
    check: Callable[[str], str] | None = None

    def __post_init__(self) -> None:
        if self.kind in (int, float) and (self.min is None or self.max is None):
            raise TypeError(f"numeric parameter {self.name!r} needs both min and max")

    @property
    def kind(self) -> type:
        """The Python type of the value: bool, int, float, str or list (of str)."""
        return type(self.default)

    def validate(self, value: Any, node: str) -> ParamValue:
        """Return ``value`` converted to this parameter's type, or raise :class:`ConfigError` naming the node
        and the parameter (types, range and choices by :func:`ser_robot.config_io.check_value`, then ``check``)."""
        where = f"node '{node}'"
        limits = {k: v for k, v in (("min", self.min), ("max", self.max), ("choices", self.choices)) if v is not None}
        checked = check_value(self.name, value, tuple[str, ...] if self.kind is list else self.kind, where=where,
                              **limits)
        items = list(checked) if self.kind is list else [checked] if self.kind is str else []
        for item in items if self.check is not None else ():
            problem = self.check(item)
            if problem:
                raise ConfigError(f"{where}: key {self.name!r} got {item!r}: {problem}") from None
        return list(checked) if self.kind is list else checked

    def number_problem(self, value: float) -> str:
        """Why number ``value`` is not allowed (not finite, below ``min``, above ``max``); '' when it is."""
        if not math.isfinite(value):
            return "not a finite number"
        if value < self.min:
            return f"below its minimum {self.min}"
        if value > self.max:
            return f"above its maximum {self.max}"
        return ""

    @property
    def limits(self) -> str:
        """What to give instead of a number out of range, e.g. ``use a value from 0.01 to 1000.0``."""
        return f"use a value from {self.min} to {self.max}"


def topic_name_problem(name: str) -> str:
    """Why ``name`` is not a valid ROS 2 topic name ('' when it is one).

    The rules of rcl's topic name validation and expansion: letters, digits, '_' and '/'; a
    leading '~' (the node's namespace) alone or followed by '/'; the substitutions ``{node}``,
    ``{ns}`` and ``{namespace}`` (the last two only first); no '//', no '/' at the end, no part
    that starts with a digit.
    """
    if not name:
        return "it is empty"
    bad = sorted(set(re.sub(r"[A-Za-z0-9_/~{}]", "", name)))
    if bad:
        return f"it contains {', '.join(map(repr, bad))}"
    if "~" in name[1:] or (name.startswith("~") and name != "~" and not name.startswith("~/")):
        return "'~' may only be its first character, alone or followed by '/'"
    if re.search(r".\{(?:ns|namespace)\}", name):
        return "'{ns}' and '{namespace}' may only be its first part"
    path = re.sub(r"\{(?:node|ns|namespace)\}", "s", name)
    if "{" in path or "}" in path:
        return "it has an unknown substitution or unbalanced braces (known: {node}, {ns}, {namespace})"
    if path.endswith("/"):
        return "it ends with '/'"
    path = "s" + path[1:] if path.startswith("~") else path.removeprefix("/")
    tokens = path.split("/")
    if "" in tokens:
        return "it contains '//'"
    numeric = [token for token in tokens if token[0].isdigit()]
    if numeric:
        return f"its part {numeric[0]!r} starts with a digit"
    return ""


def namespace_problem(namespace: str) -> str:
    """Why ``namespace`` is not a valid ROS 2 namespace ('' when it is one; '' and '/' are the root):
    the topic name rules without '~' and substitutions."""
    if namespace in ("", "/"):
        return ""
    bad = sorted(set(re.sub(r"[A-Za-z0-9_/]", "", namespace)))
    if bad:
        return f"it contains {', '.join(map(repr, bad))}"
    return topic_name_problem(namespace)


def _check_topic(name: str) -> str:
    problem = topic_name_problem(name)
    return (f"not a valid ROS topic name ({problem}); use letters, digits, '_' and '/', e.g. 'audio' or "
            "'/robot1/audio'") if problem else ""


def _check_new_folder(path: str) -> str:
    """Why no folder can be created at ``path`` (it exists, or its nearest existing parent refuses a
    new folder: tried with a temporary one); '' when one can, or when ``path`` is empty (a default)."""
    if not path:
        return ""
    folder = pathlib.Path(path).absolute()
    if os.path.lexists(folder):
        return "it exists already; choose a new folder (nothing is ever overwritten)"
    parent = folder.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ser_robot_probe_", dir=parent))
    except OSError as exc:
        return f"no folder can be created in {parent} ({exc.strerror}); choose a folder you can write to"
    return ""


_SOURCE_PARAMS = (
    ParamSpec("frame_id", "head_mics", "TF frame of the microphones, written to header.frame_id."),
    ParamSpec("stream_id", "ears", "Name of this audio stream, used in diagnostics and by consumers."),
    ParamSpec("chunk_ms", 10.0, "Duration of one AudioFrame, in milliseconds. Every message costs CPU in each "
              "receiving node: 20 ms halves the messages (docs/benchmarks.md) for up to 10 ms more latency and, "
              "through PulseAudio, more capture buffering.", min=1.0, max=1000.0),
    ParamSpec("encoding", "s16le", "Sample encoding of AudioFrame.data.", choices=("s16le", "f32le")),
    ParamSpec(
        "channel_ids",
        ["left_ear", "right_ear"],
        "One name per channel, in interleaving order; its length must equal the channel count.",
    ),
)

MICROPHONE_PARAMS = (
    ParamSpec(
        "device",
        "",
        "Input device: an index, or a substring of its name (case-insensitive); empty = system default.",
    ),
    ParamSpec("sample_rate", 0, "Capture rate in Hz; 0 = the device's native rate.", min=0, max=384000),
    ParamSpec("channels", 2, "Number of input channels to capture.", min=1, max=64),
    *_SOURCE_PARAMS,
    ParamSpec(
        "queue_size",
        200,
        "Frames buffered between the audio callback and the publishing thread; beyond it, frames are dropped and counted.",
        min=2,
        max=100000,
    ),
    ParamSpec(
        "reconnect_max_s",
        10.0,
        "Longest wait, in seconds, between attempts to reopen a lost device (back-off doubles from 0.25 s).",
        min=0.25,
        max=600.0,
    ),
)

FILE_SOURCE_PARAMS = (
    ParamSpec(
        "paths",
        ["samples"],
        "Audio files or folders (searched recursively) to stream, in order. Relative paths are resolved against the working directory.",
    ),
    ParamSpec(
        "rate", 1.0, "Playback speed factor: 1 = real time, 2 = twice as fast.", min=0.01, max=1000.0
    ),
    ParamSpec("loop", False, "Start again from the first file after the last one."),
    ParamSpec(
        "start_delay_s",
        0.5,
        "Wait this long after activation before the first frame, so subscribers can connect.",
        min=0.0,
        max=60.0,
    ),
    *_SOURCE_PARAMS,
)

RECORDER_PARAMS = (
    ParamSpec("output", "", "Bag folder to create; empty = bags/ser_robot_<date>_<time>.", check=_check_new_folder),
    ParamSpec("topics", ["audio", "diagnostics"], "Topics to record (relative names resolve in the node's namespace).",
              check=_check_topic),
    ParamSpec("storage", "mcap", "rosbag2 storage plugin.", choices=("mcap", "sqlite3")),
    ParamSpec(
        "max_duration_s",
        0.0,
        "Stop recording after this many seconds; 0 = until the node stops.",
        min=0.0,
        max=1e7,
    ),
)

LEVEL_METER_PARAMS = (
    ParamSpec("topic", "audio", "AudioFrame topic to meter.", check=_check_topic),
    ParamSpec("period_s", 1.0, "Report period, in seconds.", min=0.1, max=60.0),
    ParamSpec("stdout", False, "Print each report line to standard output instead of the log."),
)

FEATURES_PARAMS = (
    ParamSpec("input_topic", "audio", "AudioFrame topic to compute features from.", check=_check_topic),
    ParamSpec("output_topic", "features", "FeatureFrames topic the feature blocks are published on.",
              check=_check_topic),
    ParamSpec("vad_topic", "vad", "FeatureFrames topic of the speech probability (one column, 31.25 Hz).",
              check=_check_topic),
    ParamSpec("feature_set", "egemaps", "Feature set to compute (ser_robot.features.sets).", choices=FEATURE_SETS),
    ParamSpec("block_frames", 10, "Feature frames per published block (10 = 100 ms at a 10 ms hop; the extractor "
              "runs once per block, and a divisor of the inference window and hop adds no latency).", min=1,
              max=10000),
    ParamSpec("reduction", "mean", "How the ears become one signal: mean, left, right or delay_and_sum.",
              choices=REDUCTIONS),
    ParamSpec("azimuth_deg", 0.0, "delay_and_sum steering direction, degrees (0 = front, positive = left).",
              min=-90.0, max=90.0),
    ParamSpec("ear_spacing_m", 0.18, "Distance between the two ear microphones, metres.", min=0.01, max=1.0),
    ParamSpec("vad", True, "Run Silero VAD and publish its speech probability on vad_topic."),
    ParamSpec("vad_block_windows", 1, "Most VAD probabilities (32 ms each) per published block; the windows "
              "completed so far are also published with every feature block, so consumers never wait for them.",
              min=1, max=1000),
    ParamSpec("max_frame_s", 1.0, "Longest AudioFrame accepted, seconds of audio; longer ones are dropped "
              "(too_long).", min=0.001, max=60.0),
    ParamSpec("max_streams", 8, "Most streams (frame_ids) processed at once; frames of further streams are "
              "dropped (too_many_streams) until one expires.", min=1, max=1024),
    ParamSpec("reorder_window", 16, "A seq up to this many frames behind the expected one is late or repeated: "
              "dropped (out_of_order); further back it restarts the stream.", min=0, max=100000),
    ParamSpec("stream_timeout_s", 10.0, "A stream silent this long is finished and forgotten, freeing its slot; "
              "0 = never.", min=0.0, max=86400.0),
    ParamSpec("max_stream_speed", 3.0, "Most seconds of audio one stream (frame_id) may bring per second once its "
              "burst is spent; frames beyond it are dropped (rate_limited), bounding the work a flood on one stream "
              "can cause. 1 = real time; 0 = no limit (replaying bags faster than this needs a higher value).",
              min=0.0, max=1000.0),
    ParamSpec("stream_burst_s", 2.0, "Seconds of audio a stream may bring at once beyond max_stream_speed (the "
              "token bucket's size).", min=0.01, max=3600.0),
    ParamSpec("level_normalization", "agc", "agc: bring each stream's long-term speech level to level_target_dbfs "
              "(a slow, causal gain control: the microphone's gain no longer changes the result, while a louder "
              "utterance still reads louder than its neighbours); off: features of the raw level.",
              choices=("off", "agc")),
    ParamSpec("level_target_dbfs", -30.0, "Long-term speech level (RMS, dBFS) the agc brings a stream to: the level "
              "the model was trained at (the synthetic corpus: -30 dBFS, its voices -33 to -26).",
              min=-60.0, max=-6.0),
    ParamSpec("level_time_constant_s", 20.0, "Seconds of speech the agc's level estimate averages over (the "
              "first ones set it at once).", min=1.0, max=3600.0),
    ParamSpec("conceal_gap_s", 0.5, "Frames lost in a gap this short (s) are replaced by silence and the stream "
              "goes on (seq_gaps, gaps_concealed); a longer gap restarts it. 0 = always restart.", min=0.0,
              max=10.0),
    ParamSpec("stamp_tolerance_s", 0.5, "A frame whose stamp is further than this from where the previous frame "
              "ended restarts the stream at its own stamp (stamp_jumps), whatever its seq says.", min=0.001,
              max=3600.0),
)

CORPUS_PLAYER_PARAMS = (
    ParamSpec("manifest", "", "JSON Lines manifest of the utterances to play (ser-robot synth-corpus, corpus-manifest)."),
    ParamSpec("speakers", ["*"], "Play only these speakers' utterances; [\"*\"] = every speaker."),
    ParamSpec("limit", 0, "Play at most this many utterances; 0 = all.", min=0, max=10_000_000),
    ParamSpec("shuffle", True, "Play in a seeded random order (else manifest order)."),
    ParamSpec("seed", 0, "Seed of the shuffled order.", min=0, max=2**31 - 1),
    ParamSpec("pause_s", 1.0, "Silence between two utterances, seconds.", min=0.0, max=60.0),
    ParamSpec("gain_db", 0.0, "Gain applied to every utterance, dB (a quieter or hotter microphone; beyond full "
              "scale, s16le frames and device output clip).", min=-60.0, max=20.0),
    ParamSpec("rate", 1.0, "Playback speed factor: 1 = real time, 2 = twice as fast (topic output only).",
              min=0.01, max=1000.0),
    ParamSpec("loop", False, "Start again after the last utterance."),
    ParamSpec("start_delay_s", 0.5, "Wait this long after activation before the first frame.", min=0.0, max=60.0),
    ParamSpec("output", "topic", "topic: publish AudioFrame on 'audio'; device: play on an output device (e.g. the "
              "virtual ears) for a microphone node to capture.", choices=("topic", "device")),
    ParamSpec("device", "", "Output device for output=device: an index or a name substring; empty = default."),
    ParamSpec("ground_truth_topic", "ground_truth", "Emotion topic of each utterance's label, spanning the utterance.",
              check=_check_topic),
    *_SOURCE_PARAMS,
)

INFERENCE_PARAMS = (
    ParamSpec("input_topic", "features", "FeatureFrames topic to classify.", check=_check_topic),
    ParamSpec("vad_topic", "vad", "FeatureFrames topic of the feature node's speech probability.", check=_check_topic),
    ParamSpec("output_topic", "emotion", "Emotion topic the results are published on.", check=_check_topic),
    ParamSpec("model", "", "Checkpoint (ser-robot train, build-model); empty = the shipped default model."),
    ParamSpec("purifier", "", "SSAD purifier checkpoint (purifier.pt, same feature set as the model) run on every "
              "window before the model; empty = none."),
    ParamSpec("device", "auto", "Torch device: auto (CUDA when present, else CPU), cpu, cuda or cuda:N."),
    ParamSpec("backend", "auto", "auto: onnxruntime on CPU when the model's export matches PyTorch, else PyTorch; "
              "torch; onnxruntime (CPU only).", choices=("auto", "torch", "onnxruntime")),
    ParamSpec("mode", "utterance", "utterance: one result per voice-activity segment; window: sliding windows.",
              choices=("utterance", "window")),
    ParamSpec("window_s", 3.0, "Window mode: analysed window, seconds.", min=0.1, max=60.0),
    ParamSpec("hop_s", 1.0, "Window mode: time between two results, seconds.", min=0.05, max=60.0),
    ParamSpec("vad_threshold", 0.5, "Speech when the VAD probability is at least this.", min=0.0, max=1.0),
    ParamSpec("hangover_s", 0.3, "Utterance mode: silence that ends a segment, seconds.", min=0.0, max=10.0),
    ParamSpec("min_speech_s", 0.3, "Utterance mode: shorter segments are dropped (clicks, coughs), seconds.",
              min=0.0, max=10.0),
    ParamSpec("max_utterance_s", 15.0, "Utterance mode: a segment this long is ended and a new one started, seconds.",
              min=0.5, max=600.0),
    ParamSpec("interim_s", 0.0, "Utterance mode: interim result period while a segment grows, seconds; 0 = none.",
              min=0.0, max=60.0),
    ParamSpec("min_speech_ratio", 0.2, "Window mode: a window with less speech than this fraction is speech=false.",
              min=0.0, max=1.0),
    ParamSpec("min_confidence", 0.0, "A categorical result whose top probability is below this is published as "
              "uncertain: speech true, label empty, confidence and probabilities kept (0 = always name a class; see "
              "docs/results/calibration for what a threshold keeps).", min=0.0, max=1.0),
    ParamSpec("smoothing", 0.0, "Exponential smoothing of probabilities across results: weight of the previous "
              "value (0 = none).", min=0.0, max=0.99),
    ParamSpec("source_id", "", "Emotion.source_id; empty = the stream's frame_id."),
    ParamSpec("hri_expression", True, "Also publish hri_msgs/Expression on /humans/voices/<source_id>/expression "
              "when hri_msgs is installed."),
    ParamSpec("max_streams", 8, "Streams (frame_ids) tracked at once; frames of further streams are dropped "
              "and counted.", min=1, max=1024),
    ParamSpec("stdout", False, "Print one line per final result (time, label, confidence, latency)."),
    ParamSpec("reorder_window", 16, "A block seq up to this many behind the expected one (per stream and topic) is "
              "late or repeated: dropped (out_of_order); further back it is a reset.", min=0, max=100000),
    ParamSpec("stream_timeout_s", 10.0, "A stream silent this long is finished (its last results published) and "
              "forgotten, freeing its slot; 0 = never.", min=0.0, max=86400.0),
    ParamSpec("max_block_s", 120.0, "Longest FeatureFrames block accepted, seconds of frames; longer ones are "
              "dropped (too_long). Keep it above the feature node's block length.", min=0.01, max=3600.0),
)

NODE_KINDS = ("microphone", "file_source", "corpus_player", "recorder", "level_meter", "features", "inference")
SOURCE_NODES = ("microphone", "file_source", "corpus_player")

RUNNER_PARAMS = (
    ParamSpec(
        "nodes",
        ["microphone", "features", "inference"],
        "Nodes that `ser-robot run` and ser.launch.py start, in order.",
        choices=NODE_KINDS,
    ),
    ParamSpec(
        "parameter_services",
        False,
        "`ser-robot run`: give every node its parameter services (ros2 param get/set/list). Off by default: "
        "rclpy's executor looks at each of a node's services whenever a message arrives, so the six parameter "
        "services cost CPU in every busy node (docs/benchmarks.md). Lifecycle services stay. ser.launch.py's nodes "
        "always have them.",
    ),
)

NODE_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    "runner": RUNNER_PARAMS,
    "microphone": MICROPHONE_PARAMS,
    "file_source": FILE_SOURCE_PARAMS,
    "recorder": RECORDER_PARAMS,
    "level_meter": LEVEL_METER_PARAMS,
    "features": FEATURES_PARAMS,
    "corpus_player": CORPUS_PLAYER_PARAMS,
    "inference": INFERENCE_PARAMS,
}

# Numeric options of the ser-robot commands that are not node parameters (``record --duration``
# is the recorder's max_duration_s).
RUN_DURATION = ParamSpec("duration", 0.0, "stop after this many seconds (0 = at Ctrl-C, or when the sources end)",
                         min=0.0, max=1e7)
PLAY_RATE = ParamSpec("rate", 1.0, "speed factor (1 = the recorded timing, 2 = twice as fast)", min=0.01, max=1000.0)
PLAY_WAIT_S = ParamSpec("wait_for_subscribers", 0.0, "wait up to this many seconds for every topic to have a "
                        "subscriber before playing (0 = do not wait)", min=0.0, max=3600.0)


def default_config_path() -> pathlib.Path:
    """``config/ser.yaml``: the nodes' parameters."""
    return config_file("ser.yaml")


def _node_specs(node: str) -> dict[str, ParamSpec]:
    if node not in NODE_PARAMS:
        raise ConfigError(
            f"unknown node '{node}' in configuration; known nodes: {', '.join(NODE_PARAMS)}"
        ) from None
    return {spec.name: spec for spec in NODE_PARAMS[node]}


def param_spec(node: str, name: str) -> ParamSpec:
    """The spec of parameter ``name`` of node ``node``; :class:`ConfigError` listing the known ones otherwise."""
    specs = _node_specs(node)
    if name not in specs:
        raise ConfigError(f"unknown parameter {name} for node '{node}'; known parameters: {', '.join(specs)}") \
            from None
    return specs[name]


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, ParamValue]]:
    """``NODE.PARAM=VALUE`` strings (``--set``; VALUE read as YAML) -> ``{node: {param: value}}``.

    Each value is validated against its parameter now; :class:`ConfigError` names the pair.
    """
    result: dict[str, dict[str, ParamValue]] = {}
    for pair in pairs:
        parsed = parse_key_values([pair], "features.feature_set=logmel", depth=2, form="NODE.PARAM")
        ((node, params),) = parsed.items()
        ((param, value),) = params.items()
        try:
            result.setdefault(node, {})[param] = param_spec(node, param).validate(value, node)
        except ConfigError as exc:
            raise ConfigError(f"--set {pair}: {exc}") from None
    return result


def validate_node_params(node: str, values: Mapping[str, Any]) -> dict[str, ParamValue]:
    """Validate one node's parameter mapping; return it complete with defaults.

    Raises :class:`ConfigError` naming the node and parameter for an unknown node, an unknown
    key, a wrong type, an out-of-range or non-finite number, an invalid topic name or an output
    folder that cannot be created.
    """
    specs = _node_specs(node)
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for node '{node}'; "
            f"known parameters: {', '.join(specs)}"
        ) from None
    result = {name: copy.copy(spec.default) for name, spec in specs.items()}
    for name, value in values.items():
        result[name] = specs[name].validate(value, node)
    _check_channel_ids(node, result)
    return result


def _check_channel_ids(node: str, params: dict[str, ParamValue]) -> None:
    if node == "microphone" and len(params["channel_ids"]) != params["channels"]:
        raise ConfigError(
            f"node '{node}': key 'channel_ids' has {len(params['channel_ids'])} name(s) "
            f"but 'channels' is {params['channels']}: give exactly one name per channel"
        ) from None


@dataclass
class RunConfig:
    """A validated configuration: which nodes to start and every node's parameters."""

    path: pathlib.Path | None
    nodes: list[str]
    params: dict[str, dict[str, ParamValue]]

    def node_params(self, node: str) -> dict[str, ParamValue]:
        return self.params.get(node) or validate_node_params(node, {})


def load_config(
    path: str | pathlib.Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunConfig:
    """Read and validate a ROS 2 parameters YAML (``node: {ros__parameters: {...}}``).

    ``overrides`` maps node name to parameter values applied on top of the file (``--set``:
    :func:`parse_overrides`). Nodes absent from the file get their defaults.
    """
    path = pathlib.Path(path) if path is not None else default_config_path()
    raw = read_yaml_mapping(path, "configuration file", empty_ok=True)
    sections: dict[str, dict[str, Any]] = {}
    for node, section in raw.items():
        if not isinstance(section, dict) or set(section) != {"ros__parameters"}:
            raise ConfigError(
                f"section '{node}' of {path} must contain exactly one key, 'ros__parameters'"
            ) from None
        sections[str(node)] = dict(section["ros__parameters"] or {})
    for node, values in (overrides or {}).items():
        sections.setdefault(node, {}).update(values)
    try:
        params = {node: validate_node_params(node, values) for node, values in sections.items()}
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    runner = params.get("runner") or validate_node_params("runner", {})
    nodes = list(runner["nodes"])
    sources = [n for n in nodes if n in SOURCE_NODES
               and not (n == "corpus_player" and params.get(n, {}).get("output") == "device")]
    if len(sources) > 1:
        raise ConfigError(
            f"{path}: runner.nodes lists {' and '.join(sources)}; start at most one audio source "
            "per namespace (both publish on 'audio')"
        ) from None
    if len(set(nodes)) != len(nodes):
        raise ConfigError(f"{path}: runner.nodes lists a node twice: {nodes}") from None
    return RunConfig(path=path, nodes=nodes, params=params)
