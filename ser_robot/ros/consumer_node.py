"""Base lifecycle node of the consumers (features, inference, level meter): stop = tear down,
clean up = release what configure made."""

from __future__ import annotations

import abc
from collections.abc import Mapping

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher

__all__ = ["ConsumerNode"]


class ConsumerNode(LifecycleNode, metaclass=abc.ABCMeta):
    """Deactivation and shutdown both call :meth:`_teardown` (drop subscriptions and timers, publish
    what is still held), so a consumer stopped either way leaves nothing behind. Cleanup (back to
    unconfigured) destroys the publishers configure created (every ``Publisher`` attribute) and
    calls :meth:`_release` for the rest (a model), so a second configure starts afresh.

    A consumer that drops bad messages names its reasons in ``DROP_REASONS`` (``MALFORMED_REASONS``
    among them) and counts each under its reason in ``self.counts``.
    """

    DROP_REASONS: tuple[str, ...] = ()
    MALFORMED_REASONS: tuple[str, ...] = ()
    counts: Mapping[str, int]

    @property
    def malformed(self) -> int:
        """Messages dropped as malformed (the sum of ``MALFORMED_REASONS``)."""
        return sum(self.counts[reason] for reason in self.MALFORMED_REASONS)

    @property
    def dropped(self) -> int:
        """Messages dropped for any reason of ``DROP_REASONS``."""
        return sum(self.counts[reason] for reason in self.DROP_REASONS)

    @abc.abstractmethod
    def _teardown(self) -> None:
        """Release subscriptions and timers; publish pending results."""

    def _release(self) -> None:
        """Drop what configure loaded besides publishers (override: a model, per-stream state)."""

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for name, value in list(vars(self).items()):
            if isinstance(value, Publisher):
                self.destroy_publisher(value)
                setattr(self, name, None)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return super().on_deactivate(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS
