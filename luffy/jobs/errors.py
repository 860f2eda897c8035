"""The jobs layer's errors: each says what is wrong in words a caller can show."""


class JobError(Exception):
    """A job request that cannot be carried out (bad input or a job in the wrong state)."""


class NoSuchJobError(JobError):
    """No job with that id (never issued, or expired)."""


class InvalidJobState(JobError):
    """The job is in a state that does not allow the operation."""


class JobExists(JobError):
    """A job with that id already exists (job ids are unique)."""
