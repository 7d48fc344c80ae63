"""Gridshift's jobs as Ray Jobs: the Job Submission API plumbing that batch and training jobs share."""
