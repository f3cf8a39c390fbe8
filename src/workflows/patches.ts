// Workflow patch ids (see README, "Changing a workflow"). Each marks where runs started before a change take the
// old path. Lifecycle: patched() now → deprecatePatch() once no such run can be open → removed a release later.

/**
 * Issue 9 (correct under every failure): plan lock as a child workflow, lanes that settle before cleanup, run
 * timeout, final statuses. Runs started before it finish on src/workflows/legacy/*-v1.ts. The longest such run is
 * a held pre-deploy snapshot (`--hold`, default 7 days): deprecate the patch after that plus the lock's 24 h wait.
 */
export const CORRECT_UNDER_FAILURE = 'lifeboat-9-correct-under-failure';

/**
 * Issue 11 (cheap small steps): a restore writes to its target hosts in parallel (plan.parallelism lanes), each inside
 * its own quiesce controller, instead of one host after another. Runs that reached restoreByHost before it keep
 * restoring in turn. Deprecate after the longest restore (its lock wait included) that can have started before.
 */
export const PARALLEL_RESTORE_HOSTS = 'lifeboat-11-parallel-restore-hosts';

/**
 * Issue 12 (you hear about red): runs report `started` and their outcome (reportEvent: notifications, metrics), and a
 * failed run no longer shows a LifeboatSnapshot that was never stored. Runs started before it end as they began.
 */
export const RUN_EVENTS = 'lifeboat-12-run-events';

/**
 * Issue 11 (pay only for what changed): the live artifacts of one source are captured at once (plan.parallelism
 * lanes, like the sources), so a source's dump no longer waits for its file copy. Quiesced copies keep their order
 * inside the one stop. Runs that reached captureSource before it capture one artifact after another.
 */
export const PARALLEL_ARTIFACTS = 'lifeboat-11-parallel-artifacts';

/**
 * Issue 11 (streaming restore): one host's artifacts that touch nothing of each other's (a database and a file tree)
 * are restored at once (plan.parallelism lanes), inside the host's one quiesce stop; what lies inside another's tree
 * still waits for it. Only hosts with two or more artifacts reach it; runs that did before restore them in turn.
 */
export const PARALLEL_RESTORE_ARTIFACTS = 'lifeboat-11-parallel-restore-artifacts';

/**
 * Issue 11 (cheap small steps): sources preflight sized at most 64 MiB are captured in lanes of their own beside the
 * `parallelism` ones (up to plan.smallSourceParallelism at once), so many small hosts do not queue behind the bulk
 * lanes. Runs that reached captureAll before it keep one pool of `parallelism` lanes.
 */
export const SMALL_SOURCE_LANES = 'lifeboat-11-small-source-lanes';
