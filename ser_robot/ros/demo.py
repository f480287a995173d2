"""``ser-robot demo``: speech through the virtual ears, captured, metered and recorded over DDS.

Two different sentences (one per ear) are synthesised with espeak-ng, played into the
PulseAudio virtual two-ear device, captured by the microphone node, metered once per second by
the level-meter node (levels per ear, frames, sequence gaps) and recorded to an MCAP bag by the
recorder node, all in one process (see :mod:`ser_robot.ros.runner`). Then the bag is summarised.
"""

from __future__ import annotations

import datetime
import pathlib

import numpy as np

from ser_robot.audio.virtual_ears import VirtualEars
from ser_robot.bag.reader import bag_info
from ser_robot.config import RunConfig, validate_node_params
from ser_robot.data.tts import espeak_ng
from ser_robot.ros.runner import NodeSet, run

__all__ = ["make_stereo_speech", "run_demo"]

LEFT = ("en-us+m3", "The robot hears a voice on its left side and records every word of it.")
RIGHT = ("en-gb+f2", "On the right, another speaker answers calmly, a little later and a little quieter.")


def make_stereo_speech(path: pathlib.Path, sample_rate: int = 48000) -> float:
    """Write a stereo WAV with a different sentence in each ear; return its duration in s."""
    import soundfile
    from scipy.signal import resample_poly

    ears = []
    for (voice, text), delay_s, gain in ((LEFT, 0.3, 0.7), (RIGHT, 1.2, 0.4)):
        speech, rate = espeak_ng(text, voice=voice)
        speech = resample_poly(speech, sample_rate, rate).astype(np.float32)
        ears.append(np.concatenate([np.zeros(int(delay_s * sample_rate), np.float32), gain * speech]))
    length = max(len(e) for e in ears) + sample_rate // 2
    stereo = np.zeros((length, 2), np.float32)
    for channel, ear in enumerate(ears):
        stereo[: len(ear), channel] = ear
    soundfile.write(str(path), stereo, sample_rate, subtype="PCM_16")
    return length / sample_rate


def run_demo(out_dir: str | pathlib.Path = "out/demo") -> int:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    wav, bag = out / "stereo_speech.wav", out / f"bag_{stamp}"
    duration = make_stereo_speech(wav)
    print(f"demo: synthesised {duration:.1f} s of stereo speech into {wav}", flush=True)
    params = {
        "runner": validate_node_params("runner", {"nodes": ["microphone", "recorder", "level_meter"]}),
        "microphone": validate_node_params("microphone", {"device": "pulse", "sample_rate": 48000}),
        "recorder": validate_node_params("recorder", {"output": str(bag), "topics": ["audio", "diagnostics"]}),
        "level_meter": validate_node_params("level_meter", {"stdout": True}),
    }
    config = RunConfig(path=None, nodes=params["runner"]["nodes"], params=params)
    started: list[NodeSet] = []
    with VirtualEars() as ears:
        print(f"demo: virtual ears at {ears.server}; capturing with the microphone node", flush=True)

        def play(nodes: NodeSet) -> None:
            started.append(nodes)
            ears.play(wav)

        code = run(config, duration_s=duration + 1.5, on_started=play)
    if code != 0 or not started:
        return code or 1
    microphone = started[0].nodes[0]
    stats = microphone.capture.stats
    print(
        f"demo: microphone published {microphone.published} frames; overflows {stats.overflows}, "
        f"queue drops {stats.queue_drops}, clock resyncs {stats.clock_resyncs}",
        flush=True,
    )
    print(bag_info(bag).format(), flush=True)
    return 0
