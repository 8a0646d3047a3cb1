"""Conversation stores: sessions, chat logs (+ admin statistics), feedback and the answer cache.

Embedded defaults: SQLite under ``settings.home`` and an in-process cache. Servers: Redis
(sessions, cache) and PostgreSQL or MySQL/MariaDB (chat logs, feedback). Open them with
:func:`open_conversation_stores`; code that uses them asks for the Protocols in :mod:`.base`.
"""

from .base import (
    AnswerCache,
    ChatLogStore,
    FeedbackStats,
    FeedbackStore,
    LogQuery,
    Overview,
    QuestionCount,
    SessionStore,
    TrendPoint,
    UserStats,
)
from .factory import ConversationStores, open_cache, open_conversation_stores
from .records import ChatLog, Feedback, Message, Page, Session, answer_cache_key, new_id, normalise_question

__all__ = [
    "AnswerCache", "ChatLog", "ChatLogStore", "ConversationStores", "Feedback", "FeedbackStats", "FeedbackStore",
    "LogQuery", "Message", "Overview", "Page", "QuestionCount", "Session", "SessionStore", "TrendPoint", "UserStats",
    "answer_cache_key", "new_id", "normalise_question", "open_cache", "open_conversation_stores",
]
