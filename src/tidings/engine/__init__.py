"""Connections to the engines that join nodes into a cluster (Redis)."""
