"""What the emulator does with every request-body property it accepts: the inventory behind docs/api-coverage.md.

Each entry names a body type (as the service names it in its errors, e.g. ``PoolAddParameter``), a property path
(dotted for nested properties), and one :class:`Handling`. The top-level names of a body type are exactly the names
its validator accepts (``known_properties``): a property cannot be accepted without an entry here.

There is no "accepted and ignored" handling: a property is implemented, a pure description, or refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["PROPERTIES", "Handling", "PropertyUse", "body_types", "known_properties"]


class Handling(enum.Enum):
    """What the emulator does with an accepted property."""

    IMPLEMENTED = "implemented"
    """It takes effect locally as it does on Azure."""
    DESCRIPTION = "description"
    """Stored and returned, with no local effect by its nature (names, metadata, billing, placement in a region)."""
    REFUSED = "refused"
    """Answered with a Batch error body (``UnsupportedProperty`` or the service's own current error)."""


@dataclass(frozen=True)
class PropertyUse:
    """One property of one request body and what the emulator does with it.

    Attributes:
        body: the body type (``PoolAddParameter``, ``JobPatchParameter``, ...).
        path: the property, dotted when nested (``startTask.containerSettings``).
        handling: what happens to it.
        note: one sentence a user can rely on.
        sample: for refused top-level properties, a well-typed value the coverage test sends to see the refusal.
    """

    body: str
    path: str
    handling: Handling
    note: str
    sample: object = None


_I, _D, _R = Handling.IMPLEMENTED, Handling.DESCRIPTION, Handling.REFUSED


_Row = tuple[str, Handling, str] | tuple[str, Handling, str, object]


def _uses(bodies: tuple[str, ...], *rows: _Row) -> list[PropertyUse]:
    return [PropertyUse(body, *row) for body in bodies for row in rows]


_POOL_SHARED: tuple[_Row, ...] = (
    ("displayName", _D, "Stored and returned."),
    ("metadata", _D, "Stored and returned."),
    (
        "vmSize",
        _I,
        "Node containers get the size's vCPUs (CPU set and quota: nproc matches) and memory (limit, no swap beyond), "
        "capped to the machine (the node's errors say VmSizeCappedToMachine); a size the emulator does not know is "
        "refused (--vm-size-limits off: no limits, any size accepted).",
    ),
    (
        "virtualMachineConfiguration",
        _I,
        "Required. Unsupported images, malformed virtualMachineImageId and retired or mismatched nodeAgentSKUId are "
        "refused as Batch refuses them (--image-checks off lifts this); every image runs the local node image.",
    ),
    (
        "virtualMachineConfiguration.containerConfiguration",
        _I,
        "Tasks run in containers; containerImageNames are pulled before a node starts (missing: node unusable, "
        "ContainerInvalidImage); criCompatible runs like dockerCompatible.",
    ),
    (
        "virtualMachineConfiguration.containerConfiguration.containerRegistries",
        _I,
        "Pulls log in with username and password (kept sealed, never returned); identityReference is refused.",
    ),
    ("virtualMachineConfiguration.extensions", _R, "VM extensions cannot run on the local node image."),
    *(
        (f"virtualMachineConfiguration.{name}", _D, f"Stored and returned; {effect}")
        for name, effect in (
            ("diskEncryptionConfiguration", "node disks are this machine's."),
            ("nodePlacementConfiguration", "every node runs on this machine."),
            ("osDisk", "nodes run on this machine's disk."),
            ("securityProfile", "nodes are containers, not VMs."),
            ("serviceArtifactReference", "the node image is the local one."),
        )
    ),
    ("startTask", _I, "Runs on every node before it takes tasks; retries and waitForSuccess are honoured."),
    (
        "startTask.containerSettings",
        _I,
        "The start task runs in its image (a container pool is needed), like a task's containerSettings.",
    ),
    ("taskSlotsPerNode", _I, "Slots per node; tasks take requiredSlots of them."),
    ("taskSchedulingPolicy", _I, "nodeFillType spread or pack places tasks on nodes."),
    ("taskSchedulingPolicy.jobDefaultOrder", _I, "Equal-priority jobs take turns (none) or go oldest first."),
    ("enableInterNodeCommunication", _D, "Nodes share the machine's loopback network: they always reach each other."),
    (
        "networkConfiguration",
        _D,
        "Stored and returned; nodes use the machine's loopback network, so subnets, public IPs and inbound "
        "endpoints have no local effect.",
    ),
    (
        "userAccounts",
        _I,
        "Created as Linux users on every node (admin: sudo group; linuxUserConfiguration uid, gid, sshPrivateKey); "
        "tasks naming one run as it. Passwords are not kept (never returned; nodes have no remote login).",
    ),
    (
        "mountConfiguration",
        _I,
        "Blob containers of the linked storage are synced directories under $AZ_BATCH_NODE_MOUNTS_DIR; keys never "
        "returned.",
    ),
    ("mountConfiguration.azureBlobFileSystemConfiguration.blobfuseOptions", _D, "Stored; no blobfuse runs locally."),
    ("mountConfiguration.azureBlobFileSystemConfiguration.identityReference", _R, "No managed identities locally."),
    ("mountConfiguration.nfsMountConfiguration", _R, "Nodes reach only this machine: no NFS shares."),
    ("mountConfiguration.cifsMountConfiguration", _R, "Nodes reach only this machine: no CIFS/SMB shares."),
    ("mountConfiguration.azureFileShareConfiguration", _R, "Nodes reach only this machine: no Azure Files shares."),
    (
        "applicationPackageReferences",
        _I,
        "Checked at once (missing: 409 InvalidApplicationPackageReferences); installed on each node.",
    ),
    (
        "certificateReferences",
        _R,
        "Batch retired certificates in 2024: any certificate is refused (400 CertificateRetired); [] is kept.",
        [{"thumbprint": "0123456789abcdef", "thumbprintAlgorithm": "sha1"}],
    ),
    ("targetNodeCommunicationMode", _D, "Stored and returned; node agents always connect out to the emulator."),
    ("resourceTags", _D, "Stored and returned: the Azure tags of the pool's VMs (nothing is billed locally)."),
    ("upgradePolicy", _D, "Stored and returned; the local node image is never upgraded."),
)

_JOB_ONLY_AT_ADD = (
    ("displayName", _D, "Stored and returned."),
    ("usesTaskDependencies", _I, "Enables dependsOn on the job's tasks."),
    ("commonEnvironmentSettings", _I, "Set in every task's environment (its own tasks' too), before their own."),
    ("jobManagerTask", _I, "Becomes the job's first task, placed before the others; its end may end the job."),
    ("jobManagerTask.killJobOnCompletion", _I, "When it completes the job is terminated (reason JMComplete)."),
    ("jobManagerTask.runExclusive", _I, "It takes all the slots of its node while it runs."),
    ("jobManagerTask.allowLowPriorityNode", _I, "False keeps it on dedicated nodes."),
    (
        "jobManagerTask.containerSettings",
        _I,
        "Runs in its image as a task's does (a container pool is needed); the registry password is kept sealed.",
    ),
    (
        "jobManagerTask.applicationPackageReferences",
        _I,
        "Installed as a task's (AZ_BATCH_APP_PACKAGE_*); a missing one fails it: ApplicationPackageError.",
    ),
    ("jobManagerTask.authenticationTokenSettings", _I, "access job: AZ_BATCH_AUTHENTICATION_TOKEN for its job."),
    ("jobPreparationTask", _I, "Runs on a node before the job's first task there; tasks show preparing meanwhile."),
    ("jobPreparationTask.waitForSuccess", _I, "True: tasks wait for it and never use a node where it failed."),
    ("jobPreparationTask.constraints", _I, "maxTaskRetryCount retries it; maxWallClockTime kills it."),
    (
        "jobPreparationTask.rerunOnNodeRebootAfterSuccess",
        _I,
        "It runs again on a node after a reboot (nodes reboot only by the node reboot operation).",
    ),
    (
        "jobPreparationTask.containerSettings",
        _I,
        "Runs in its image (a container pool is needed); without it, it runs on the node, as in Batch.",
    ),
    ("jobReleaseTask", _I, "Runs on every node that ran the preparation task when the job ends."),
    ("jobReleaseTask.maxWallClockTime", _I, "Kills it after this long (at most and by default 15 minutes)."),
    ("jobReleaseTask.retentionTime", _I, "Its directory is removed this long after it ended."),
    (
        "jobReleaseTask.containerSettings",
        _I,
        "Runs in its image (a container pool is needed); without it, it runs on the node, as in Batch.",
    ),
    ("onTaskFailure", _I, "performexitoptionsjobaction applies the failed task's exit options' jobAction."),
)
_JOB_SHARED = (
    ("priority", _I, "Higher-priority jobs' tasks are placed first."),
    ("allowTaskPreemption", _I, "Its running tasks are requeued to make room for a higher-priority job's task."),
    ("maxParallelTasks", _I, "At most this many of the job's tasks run at once."),
    ("constraints", _I, "maxWallClockTime ends the job; maxTaskRetryCount is the tasks' default."),
    ("poolInfo", _I, "The pool the job runs on (changed only while it is disabled), or the auto pool made for it."),
    (
        "poolInfo.autoPoolSpecification",
        _I,
        "A pool, {autoPoolIdPrefix}_{GUID}, created for the job as POST /pools creates one (real nodes); one that "
        "cannot be created completes the job with executionInfo.schedulingError. An update may not change it.",
    ),
    (
        "poolInfo.autoPoolSpecification.poolLifetimeOption",
        _I,
        "job: deleted when its job completes or is deleted; jobschedule (job schedules only, else 400): one pool for "
        "all the schedule's jobs, deleted when the schedule completes or is deleted.",
    ),
    ("poolInfo.autoPoolSpecification.keepAlive", _I, "The pool stays when its lifetime ends."),
    ("poolInfo.autoPoolSpecification.autoPoolIdPrefix", _I, "Up to 20 characters before the generated id."),
    (
        "poolInfo.autoPoolSpecification.pool",
        _I,
        "A pool add body without id: validated and handled as PoolAddParameter says, when the pool is created.",
    ),
    ("onAllTasksComplete", _I, "terminatejob ends the job when no task is active or running."),
    ("metadata", _D, "Stored and returned."),
    (
        "networkConfiguration",
        _R,
        "Tasks use the machine's loopback network: a job's virtual network is not emulated.",
        {"subnetId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/v/subnets/s"},
    ),
)
_SCHEDULE_SHARED = (
    ("schedule", _I, "When jobs are created; intervals of at least one minute (lower only with a test option)."),
    ("schedule.doNotRunUntil", _I, "No job before this time (default: at once)."),
    ("schedule.doNotRunAfter", _I, "No job from this time on; the schedule then completes."),
    ("schedule.startWindow", _I, "An occurrence's job must start within this long, else it is skipped."),
    ("schedule.recurrenceInterval", _I, "A new job this long after the previous one's due time (never two active)."),
    ("jobSpecification", _I, "Each job created is built from it, as from an add-job body."),
    ("metadata", _D, "Stored and returned."),
)

PROPERTIES: tuple[PropertyUse, ...] = (
    *_uses(
        ("PoolAddParameter",),
        ("id", _I, "The pool's id: 1-64 letters, digits, '-' or '_'; unique ignoring case."),
        ("targetDedicatedNodes", _I, "Dedicated node containers the pool keeps (at most 32); no target: 0 nodes."),
        ("targetLowPriorityNodes", _I, "Spot/low-priority node containers (isDedicated false)."),
        ("resizeTimeout", _I, "A resize not done in time stops with ResizeTimedOut (at least 5 min, as on Batch)."),
        ("enableAutoScale", _I, "The formula sets the targets (targets may then not be given)."),
        ("autoScaleFormula", _I, "Checked when set; evaluated on samples of the pool's real state (see below)."),
        ("autoScaleEvaluationInterval", _I, "Default PT15M, at least 5 min (--autoscale-min-interval lowers it)."),
        (
            "cloudServiceConfiguration",
            _R,
            "Batch retired cloud service pools in 2024: refused with InvalidPropertyValue naming the property.",
            {"osFamily": "4"},
        ),
        ("applicationLicenses", _D, "Stored and returned; no license server is needed locally."),
        ("maxTasksPerNode", _I, "The pre-2020 name of taskSlotsPerNode (older SDKs send it): sets the slots per node."),
        *_POOL_SHARED,
    ),
    *_uses(("PoolPatchParameter",), *_POOL_SHARED),
    *_uses(
        ("PoolUpdatePropertiesParameter",),
        ("startTask", _I, "Replaces the start task (nodes created afterwards run the new one)."),
        ("applicationPackageReferences", _I, "Replaced; checked at once (missing: 409), installed on new nodes."),
        ("metadata", _D, "Replaced."),
        (
            "certificateReferences",
            _R,
            "Batch retired certificates in 2024: any certificate is refused (400 CertificateRetired); [] is kept.",
            [{"thumbprint": "0123456789abcdef", "thumbprintAlgorithm": "sha1"}],
        ),
        ("targetNodeCommunicationMode", _D, "Replaced; when absent the pool's mode becomes default, as on Batch."),
    ),
    *_uses(
        ("PoolResizeParameter",),
        ("targetDedicatedNodes", _I, "New dedicated target."),
        ("targetLowPriorityNodes", _I, "New spot/low-priority target."),
        ("resizeTimeout", _I, "A resize not done in time stops with ResizeTimedOut; waiting nodes stay."),
        (
            "nodeDeallocationOption",
            _I,
            "requeue and terminate end running tasks at once; taskcompletion and retaineddata let them finish first.",
        ),
    ),
    *_uses(("JobAddParameter",), ("id", _I, "The job's id; unique ignoring case (not a job schedule's id).")),
    *_uses(("JobAddParameter", "JobSpecification"), *_JOB_ONLY_AT_ADD),
    *_uses(("JobAddParameter", "JobPatchParameter", "JobSpecification"), *_JOB_SHARED),
    *_uses(("JobDisableParameter",), ("disableTasks", _I, "requeue, terminate or wait for the job's running tasks.")),
    *_uses(
        ("JobScheduleAddParameter",),
        ("id", _I, "The schedule's id; its jobs are {id}:job-1, {id}:job-2, ... (not a job's id)."),
        ("displayName", _D, "Stored and returned."),
    ),
    *_uses(("JobScheduleAddParameter", "JobSchedulePatchParameter"), *_SCHEDULE_SHARED),
    *_uses(
        ("TaskAddParameter",),
        ("id", _I, "The task's id; unique in its job ignoring case."),
        ("displayName", _D, "Stored and returned."),
        ("commandLine", _I, "Run without a shell (as Batch does on Linux)."),
        ("resourceFiles", _I, "Downloaded into the working directory before the command runs."),
        ("outputFiles", _I, "Uploaded after the command by their uploadCondition."),
        ("environmentSettings", _I, "Set in the task's environment after the job's common settings."),
        ("constraints", _I, "maxWallClockTime kills the task; maxTaskRetryCount retries it."),
        ("constraints.retentionTime", _I, "The task's directory is removed this long after it completed."),
        ("requiredSlots", _I, "Slots the task takes on its node."),
        ("userIdentity", _I, "autoUser elevationLevel admin or nonadmin."),
        ("userIdentity.username", _I, "The task runs as that pool user account (a task fails if it does not exist)."),
        ("dependsOn", _I, "taskIds and taskIdRanges hold the task until they succeed."),
        (
            "multiInstanceSettings",
            _I,
            "Runs on numberOfInstances free nodes at once (pool with inter-node communication, 1 slot per node): "
            "commonResourceFiles and the coordination command on each, then the command line on the primary; "
            "not with containerSettings or a job preparation task (refused).",
        ),
        ("exitConditions", _I, "Exit options by exit code, range or error: dependencyAction and jobAction apply."),
        ("affinityInfo", _I, "The task goes to the node of that affinityId when it has room."),
        (
            "containerSettings",
            _I,
            "Runs in its image beside the node (node directories at the same paths); a container pool needs it.",
        ),
        (
            "containerSettings.containerRunOptions",
            _I,
            "Parsed; options that would break or escape the node (--privileged, host mounts, ...) are refused.",
        ),
        ("containerSettings.registry.identityReference", _R, "No managed identities locally."),
        (
            "applicationPackageReferences",
            _I,
            "Installed on the node with AZ_BATCH_APP_PACKAGE_*; a missing one fails the task: ApplicationPackageError.",
        ),
        (
            "authenticationTokenSettings",
            _I,
            "access job: AZ_BATCH_AUTHENTICATION_TOKEN, a Bearer token good for its own job's operations.",
        ),
    ),
    *_uses(("TaskAddCollectionParameter",), ("value", _I, "Up to 100 tasks, each answered on its own.")),
    *_uses(
        ("PoolEnableAutoScaleParameter",),
        (
            "autoScaleFormula",
            _I,
            "Checked (syntax errors with their position); evaluated at once, then every interval.",
        ),
        ("autoScaleEvaluationInterval", _I, "Restarts the schedule; kept when left out on a pool that autoscales."),
    ),
    *_uses(
        ("PoolEvaluateAutoScaleParameter",),
        ("autoScaleFormula", _I, "Evaluated on the pool's samples now; the autoScaleRun is returned, not applied."),
    ),
    *_uses(
        ("NodeRemoveParameter",),
        ("nodeList", _I, "1-100 node ids; the pool's targets drop by as many and those nodes go first."),
        ("resizeTimeout", _I, "As for resize: nodes still waiting for their tasks then stay (ResizeTimedOut)."),
        ("nodeDeallocationOption", _I, "requeue, terminate, taskcompletion or retaineddata (as for resize)."),
    ),
    *_uses(
        ("NodeRebootParameter",),
        ("nodeRebootOption", _I, "How running tasks end before the container restarts; the start task runs again."),
        ("nodeRebootKind", _I, "The newer name of nodeRebootOption."),
    ),
    *_uses(
        ("NodeReimageParameter",),
        ("nodeReimageOption", _I, "How running tasks end before the container is recreated with an empty disk."),
    ),
    *_uses(
        ("NodeDeallocateParameter",),
        ("nodeDeallocateOption", _I, "How running tasks end before the container stops (kept until start)."),
    ),
    *_uses(
        ("NodeDisableSchedulingParameter",),
        ("nodeDisableSchedulingOption", _I, "requeue, terminate or taskcompletion for the running tasks."),
    ),
    *_uses(
        ("ComputeNodeUser",),
        ("name", _I, "A Linux user in the node container, with a home directory and bash."),
        ("isAdmin", _I, "Member of the sudo group."),
        ("expiryTime", _I, "The account's expiry date (day precision, as Batch documents for Linux; default 1 day)."),
        ("password", _I, "Set with chpasswd; never stored by the emulator, never returned."),
        ("sshPublicKey", _I, "Written to ~/.ssh/authorized_keys (nodes run no SSH server: see remote login)."),
    ),
    *_uses(
        ("NodeUpdateUserParameter",),
        ("password", _I, "Replaced; left out, the password is removed (locked)."),
        ("expiryTime", _I, "Replaced; left out, it becomes 1 day from now."),
        ("sshPublicKey", _I, "Replaced; left out, the key is removed."),
    ),
    *_uses(
        ("UploadBatchServiceLogsConfiguration",),
        ("containerUrl", _I, "A container SAS URL: agent.log and the start task's stdout/stderr are uploaded there."),
        ("startTime", _I, "Files last written before it are left out."),
        ("endTime", _I, "Nothing is uploaded for a node that started after it."),
        (
            "identityReference",
            _R,
            "Managed identities do not exist locally: give a SAS URL.",
            {"resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/x/z"},
        ),
    ),
)
"""The inventory: every accepted property of every request body the emulator validates."""


def body_types() -> tuple[str, ...]:
    """The body types of the inventory, in first-seen order."""
    return tuple(dict.fromkeys(use.body for use in PROPERTIES))


def known_properties(body: str) -> frozenset[str]:
    """The top-level property names a body type accepts (anything else is ``InvalidRequestBody``).

    Raises:
        KeyError: the inventory has no such body type.
    """
    names = frozenset(use.path for use in PROPERTIES if use.body == body and "." not in use.path)
    if not names:
        raise KeyError(body)
    return names
