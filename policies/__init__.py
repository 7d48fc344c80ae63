"""Policies layer: stress levels, magnitude ladder, window planner, power and battery models; the policy actor."""
