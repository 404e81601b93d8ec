"""Durable state: sessions, seen events, the outbox of commands and sink deliveries."""
