"""Collectors: run commands and measure the CPU they really used."""
