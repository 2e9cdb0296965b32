"""Async jobs: accepted, stored, fed to the scheduler, run again after a restart."""
