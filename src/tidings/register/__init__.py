"""The user register: which node holds which connection of a user."""

from tidings.register.base import UserConnection, UserRegister
from tidings.register.memory import MemoryUserRegister

__all__ = ["MemoryUserRegister", "UserConnection", "UserRegister"]
