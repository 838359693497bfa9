"""Offline side of digitd: data loading, training and evaluation (never imported by the daemon)."""
