"""Base lifecycle node of the consumers (features, inference, level meter): stop = tear down."""

from __future__ import annotations

import abc

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

__all__ = ["ConsumerNode"]


class ConsumerNode(LifecycleNode, metaclass=abc.ABCMeta):
    """Deactivation and shutdown both call :meth:`_teardown` (drop subscriptions and timers, publish
    what is still held), so a consumer stopped either way leaves nothing behind."""

    @abc.abstractmethod
    def _teardown(self) -> None:
        """Release subscriptions and timers; publish pending results."""

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return super().on_deactivate(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS
