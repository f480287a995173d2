import numpy as np
import pytest
import soundfile

from conftest import write_stereo_tones
from ser_robot.audio.file_source import FileSource, Pacer, expand_audio_paths
from ser_robot.errors import AudioError


def test_chunks_cover_the_files_in_order_with_sample_exact_stamps(tmp_path):
    a = write_stereo_tones(tmp_path / "a.wav", seconds=1.305, rate=16000)  # over two file reads
    (tmp_path / "sub").mkdir()
    b = write_stereo_tones(tmp_path / "sub" / "b.wav", seconds=0.2, rate=48000)
    source = FileSource([tmp_path], chunk_ms=10.0)
    chunks = list(source.chunks(start_time=1000.0))
    first = [c for c in chunks if c.sample_rate == 16000]
    second = [c for c in chunks if c.sample_rate == 48000]
    assert [c.num_frames for c in first] == [160] * 130 + [80]
    np.testing.assert_allclose(np.concatenate([c.samples for c in first]), a, atol=1 / 32768)
    np.testing.assert_allclose(np.concatenate([c.samples for c in second]), b, atol=1 / 32768)
    assert chunks[0].time == 1000.0
    assert second[0].time == pytest.approx(1000.0 + 1.305)
    assert np.diff([c.time for c in second]) == pytest.approx(0.01)


def test_loop_repeats(tmp_path):
    write_stereo_tones(tmp_path / "a.wav", seconds=0.05, rate=16000)
    chunks = FileSource([tmp_path / "a.wav"], chunk_ms=10.0, loop=True).chunks(0.0)
    times = [next(chunks).time for _ in range(12)]
    assert times[5] == pytest.approx(0.05) and times[11] == pytest.approx(0.11)


def test_errors_name_the_path(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        expand_audio_paths([tmp_path / "nope.wav"])
    with pytest.raises(AudioError, match="contains no audio files"):
        expand_audio_paths([tmp_path])
    mono = tmp_path / "mono.wav"
    soundfile.write(str(mono), np.zeros(100, np.float32), 16000)
    with pytest.raises(AudioError, match="has 1 channel\\(s\\); this source is configured for 2"):
        FileSource([mono], channels=2)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not a wav file at all")
    with pytest.raises(AudioError, match="cannot read audio file"):
        FileSource([garbage])


def test_pacer_spaces_media_time_by_rate():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    pacer = Pacer(rate=2.0, start=1.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait_until(0.0)
    pacer.wait_until(1.0)
    assert slept == [1.0, 0.5]
