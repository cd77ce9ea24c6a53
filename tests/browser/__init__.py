"""Helpers for the browser tests: servers on free ports and Debian's Chromium."""
