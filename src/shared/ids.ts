// Workflow ids: readable in the Web UI, unique per run, and the same for one deploy id (see predeploy).
export function backupWorkflowId(plan: string, tier: string, at: Date): string {
  return `backup-${plan}-${tier}-${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}
