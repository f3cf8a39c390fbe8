// A deliberately non-deterministic edit of backupPlan (a timer before its first step, as a careless refactor
// might add), for the replay test to prove that the golden histories catch such a change.
import { sleep } from '@temporalio/workflow';
import { backupPlan as realBackupPlan } from '../../src/workflows/backup';
import type { BackupInput, BackupResult } from '../../src/shared/types';

export { planLock } from '../../src/workflows/plan-lock';

export async function backupPlan(input: BackupInput): Promise<BackupResult> {
  await sleep(1);
  return realBackupPlan(input);
}
