"""The seed applications, built from the shared core (see :mod:`jisik.apps.base`)."""

from .base import APPS, App, OffTopicFilter, Suggester, TopicDecision, default_app, get_app, register

__all__ = ["APPS", "App", "OffTopicFilter", "Suggester", "TopicDecision", "default_app", "get_app", "register"]
