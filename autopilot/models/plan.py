"""The plan, as parsed from markdown, and the parse activity's input."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field

from autopilot.models.site import ExecutionPlace


class FileRef(BaseModel):
    """One entry of a task's `**Files:**` list: `- Create: path`, `- Modify: path`, `- path`."""

    action: str = ""  # lower-cased word before the colon ("create", "modify", "test"), or ""
    path: str
    line: int


class Task(BaseModel):
    id: str  # as written in the heading: "31.1", "31.1a", "1"
    title: str
    batch: int
    body: str  # everything under the heading up to the next task/batch heading, verbatim
    files: list[FileRef] = Field(default_factory=list)
    verification: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)  # task ids
    commit_message: str | None = None
    line: int  # 1-based line of the heading


class Batch(BaseModel):
    number: int
    title: str
    description: str = ""  # text between the batch heading and its first task
    dependencies: list[int] = Field(default_factory=list)  # batch numbers
    # Where its tasks run ("execution_mode" in payloads recorded before the rename).
    execution_place: ExecutionPlace | None = Field(
        default=None, validation_alias=AliasChoices("execution_place", "execution_mode")
    )
    sequential: bool = False  # `**Execution Mode:** sequential`: one task at a time, in order
    tasks: list[Task] = Field(default_factory=list)
    line: int
    implicit: bool = False  # a plan without batch headings: one batch of all tasks


class KeptField(BaseModel):
    """A `**Label:** value` line autopilot does not read: it stays in the text the agent gets
    (`**Target Efficiency:** >85%`); `--dry-run` lists it so nobody thinks it was acted on."""

    line: int
    label: str  # as written, without the stars and colon
    owner: str  # "plan context", "Batch 31", "Task 31.1": whose text keeps it


class IgnoredBlock(BaseModel):
    """Text the parser kept only as context (front matter, prose outside batches and tasks)."""

    start_line: int
    end_line: int
    summary: str  # the first non-blank line, shortened


class DoneTask(BaseModel):
    """A task the plan marks complete (`(COMPLETE)` on a heading above it, or ✅): listed in the
    dry run, never run; a dependency on it is met."""

    id: str
    title: str
    line: int
    marked_by: str = ""  # the heading that marks it done; "" when the task itself is marked


class PlanWarning(BaseModel):
    """Something in a plan that runs anyway but may not do what its author meant."""

    line: int
    message: str


class Plan(BaseModel):
    path: str
    sha256: str = ""  # of the file as parsed: the session's snapshot
    title: str | None = None
    front_matter: str = ""
    context: str = ""  # prose before the first batch/task: given to the agent as plan context
    batches: list[Batch]
    ignored: list[IgnoredBlock] = Field(default_factory=list)
    # The texts (task bodies, context, batch descriptions) are left out: they stay in the
    # snapshot under the state dir (autopilot/plan/snapshots.py), read by the activities.
    outline: bool = False
    # The plan's default `**Execution Mode:**` (before the first batch), as read ("sequential",
    # "parallel, local"); "" when the plan sets none. Each batch already has it applied.
    execution_mode: str = ""
    execution_mode_line: int = 0
    kept_fields: list[KeptField] = Field(default_factory=list)
    done_tasks: list[DoneTask] = Field(default_factory=list)
    warnings: list[PlanWarning] = Field(default_factory=list)

    def task_count(self) -> int:
        return sum(len(batch.tasks) for batch in self.batches)


class ParsePlanInput(BaseModel):
    plan_path: str
    start_batch: int | None = None
    end_batch: int | None = None
    # Given: the parsed plan is kept there as a snapshot and the result is its outline.
    state_dir: str | None = None
    sha256: str = ""  # load_plan: the snapshot to read again
    plan_text: str = ""  # remote mode: the plan itself (SessionRequest.plan_text)
