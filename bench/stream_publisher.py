"""K real-time AudioFrame streams from one WAV, for the streams-over-DDS benchmark ``pipeline_dds_bench.py``.

Stream ``k`` has ``header.frame_id`` ``mics_k`` and starts ``k / K`` of the way into the WAV (looping),
so the streams do not speak in unison. Once the pipeline has subscribed, all of them are
published from one thread, paced in real time (every ``--chunk-ms``, one frame per stream, stamped with the time of its first sample, as
the microphone node does), on ``audio`` with the sensor-data QoS, for ``--seconds``.

    python bench/stream_publisher.py --wav speech.wav --streams 4 --seconds 30 --namespace pipeline_bench
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import soundfile as sf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True, help="audio published per stream, s")
    parser.add_argument("--chunk-ms", type=float, default=10.0)
    parser.add_argument("--wait", type=float, default=60.0, help="longest wait for a subscriber (the pipeline "
                        "subscribes once it has loaded its model), s")
    parser.add_argument("--namespace", default="")
    args = parser.parse_args()

    import rclpy

    from ser_robot.audio.chunk import AudioChunk
    from ser_robot.audio.file_source import Pacer
    from ser_robot.ros.conversions import chunk_to_audio_frame
    from ser_robot.ros.qos import SENSOR_DATA_QOS
    from ser_robot_msgs.msg import AudioFrame

    audio, rate = sf.read(args.wav, dtype="float32", always_2d=True)
    channel_ids = ["left_ear", "right_ear"] if audio.shape[1] == 2 else [f"ch{i}" for i in range(audio.shape[1])]
    chunk = round(rate * args.chunk_ms / 1000)
    offsets = [round(k * len(audio) / args.streams) for k in range(args.streams)]
    chunks = int(args.seconds * rate) // chunk
    looped = np.concatenate([audio, audio])  # stream k reads [offset_k, offset_k + len(audio)) at most once per lap
    rclpy.init()
    node = rclpy.create_node("stream_publisher", namespace=args.namespace)
    publisher = node.create_publisher(AudioFrame, "audio", SENSOR_DATA_QOS)
    deadline = time.monotonic() + args.wait
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print(f"stream_publisher: no subscriber to {publisher.topic_name} after {args.wait:g} s", flush=True)
            return 1
        time.sleep(0.05)
    time.sleep(0.5)  # discovery completes both ways
    start_wall = time.time()
    pacer = Pacer()
    for n in range(chunks):
        pacer.wait_until((n + 1) * chunk / rate)  # the chunk's last sample has been "captured"
        begin = n * chunk
        for k, offset in enumerate(offsets):
            first = (offset + begin) % len(audio)
            samples = looped[first:first + chunk]
            frame = AudioChunk(samples=samples, sample_rate=rate, time=start_wall + begin / rate)
            publisher.publish(chunk_to_audio_frame(frame, n, "s16le", channel_ids, f"mics_{k}"))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
