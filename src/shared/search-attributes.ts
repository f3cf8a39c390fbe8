// Typed search attributes so the Temporal Web UI can filter Lifeboat runs by plan, tier and outcome.
// @temporalio/common is pure (no Node built-ins), so workflow code may import this file.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const PLAN = defineSearchAttributeKey('LifeboatPlan', SearchAttributeType.KEYWORD);
export const TIER = defineSearchAttributeKey('LifeboatTier', SearchAttributeType.KEYWORD);
export const STATUS = defineSearchAttributeKey('LifeboatStatus', SearchAttributeType.KEYWORD);
export const SNAPSHOT = defineSearchAttributeKey('LifeboatSnapshot', SearchAttributeType.KEYWORD);
export const DEPLOY_ID = defineSearchAttributeKey('LifeboatDeployId', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [PLAN, TIER, STATUS, SNAPSHOT, DEPLOY_ID];

/** `--search-attribute Name=Keyword` arguments for `temporal server start-dev` and `temporal operator`. */
export function searchAttributeArgs(): string[] {
  return ALL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);
}
