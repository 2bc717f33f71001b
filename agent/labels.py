"""Label-name rules shared by the config, the job API and the job view. Imports nothing else of
carbonscope, so the config can check promoted tags without loading the jobs machinery."""

from __future__ import annotations

import re

TAG_KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")  # a tag key that may become a label name
TAG_LABEL_PREFIX = "tag_"


def tag_label(key: str) -> str:
    """The label name a promoted tag gets on ``carbonscope_job_info``: ``team`` -> ``tag_team``."""
    return TAG_LABEL_PREFIX + key
