"""Cells: run configuration, profiles, running one cell, claiming cells and sweeping a grid."""
