"""The tenant's suppression list: people who must never be contacted, whatever the task."""
