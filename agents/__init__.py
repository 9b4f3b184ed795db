"""Chorus agents: market, sentiment, risk and fusion, behind one small interface."""
