// Every workflow the worker runs. Workflow code: deterministic, no Node built-ins, activities by type only.
export { backupPlan } from './backup';
export { restoreSnapshot, verifyRestore } from './restore';
export { predeployBackup } from './predeploy';
export { planLock } from './plan-lock';
export { freshnessWatchdog } from './freshness';
