// The workflows as they were before patch CORRECT_UNDER_FAILURE (src/workflows/legacy), under their type names:
// the v1 workflow test runs them to record what a run started before that deploy has in its history.
export { backupPlanV1 as backupPlan } from '../../src/workflows/legacy/backup-v1';
export { restoreSnapshotV1 as restoreSnapshot, verifyRestoreV1 as verifyRestore } from '../../src/workflows/legacy/restore-v1';
export { predeployBackupV1 as predeployBackup } from '../../src/workflows/legacy/predeploy-v1';
