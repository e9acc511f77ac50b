"""The Telegram adapter on kurigram (module ``pyrogram``): strategy, error table, session conversion."""

from invite.platforms.telegram.strategy import TelegramFactory, TelegramStrategy

__all__ = ["TelegramFactory", "TelegramStrategy"]
