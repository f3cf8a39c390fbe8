import { describe, expect, it } from 'vitest';
import { parseHold, predeployWorkflowId } from '../../src/cli/predeploy';

describe('predeploy helpers', () => {
  it('one workflow id per plan and deploy id', () => {
    expect(predeployWorkflowId('shop', 'gh-123')).toBe('predeploy-shop-gh-123');
    expect(predeployWorkflowId('shop', 'gh-123')).toBe(predeployWorkflowId('shop', 'gh-123'));
  });
  it('refuses deploy ids that are not plain names', () => {
    for (const bad of ['', 'a b', '../x', '-x', 'x'.repeat(201), 'a;b']) expect(() => predeployWorkflowId('shop', bad)).toThrow('deploy id');
  });
  it('parses hold durations', () => {
    expect(parseHold('7d')).toBe(604800);
    expect(parseHold('12h')).toBe(43200);
    expect(parseHold('30m')).toBe(1800);
    expect(parseHold('90s')).toBe(90);
    for (const bad of ['7', 'd', '1w', '-1d', '1.5h']) expect(() => parseHold(bad)).toThrow('--hold');
  });
});
