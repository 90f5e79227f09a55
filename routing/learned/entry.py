"""Where an item starts: the task type's `router:` key and the rung the fitted router picks.

    task_types:
      tickets:
        router: {file: fitted/tickets-3f2a9c1d04be.json, sha256: 3f2a..., skip_below: 0.35}

An item whose router score (the predicted chance that the first rung's answer is right) is
below `skip_below` starts on the second rung: the doomed cheap call is never made. Without
`skip_below` the key only records which artefact the task type was fitted with.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from routing.learned.artefact import load_artefact
from routing.schema import StrictModel


class RouterRef(StrictModel):
    file: str = Field(min_length=1)  # read from the working directory, like replay_file
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")  # the file's hash: a changed file is refused
    skip_below: float | None = Field(default=None, ge=0, le=1)


def entry_tiers(ref: RouterRef, ladder: Sequence[str], texts: Sequence[str]) -> list[str]:
    """The rung each item starts on: the second for items scored below `skip_below`, else
    the first. Raises ArtefactError when the file is missing or changed."""
    artefact = load_artefact(ref.file, ref.sha256)
    if ref.skip_below is None or artefact.router is None or len(ladder) < 2:
        return [ladder[0]] * len(texts)
    router = artefact.router
    return [ladder[1] if router.score(t) < ref.skip_below else ladder[0] for t in texts]
