"""Live speech emotion recognition: a checkpoint, VAD segmentation and per-stream inference.

- :mod:`~ser_robot.inference.model`: :class:`EmotionModel` (checkpoint, device, stream checks).
- :mod:`~ser_robot.inference.segmenter`: :class:`VadSegmenter` (utterances from VAD probabilities).
- :mod:`~ser_robot.inference.engine`: :class:`StreamInference` (utterance and window modes).

The inference node (:mod:`ser_robot.ros.inference_node`) is a thin ROS adapter around these.
"""

from ser_robot.inference.engine import EmotionResult, InferenceSettings, StreamInference
from ser_robot.inference.model import EmotionModel, Prediction, default_model_path
from ser_robot.inference.segmenter import Segment, VadSegmenter

__all__ = ["EmotionModel", "EmotionResult", "InferenceSettings", "Prediction", "Segment", "StreamInference",
           "VadSegmenter", "default_model_path"]
