"""Stores: one Protocol per kind, each with an embedded and a server implementation."""
