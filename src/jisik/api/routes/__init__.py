"""One router per capability: health, query, chat (REST, SSE, WebSocket), sessions, feedback,
admin statistics, ingestion jobs and metrics."""
