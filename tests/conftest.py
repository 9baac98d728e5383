"""Shared fixtures. The tests import the installed numgru (``--import-mode=importlib``)
and the slow reference from this folder."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
