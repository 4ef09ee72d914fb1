from pact_bot.jobs.model import Enqueued, Job, JobKind, JobState, Queue

__all__ = ["Enqueued", "Job", "JobKind", "JobState", "Queue"]
