/** `code` with its inline map slimmed: every mapping and the text of the sources `own` accepts, lines of the rest. */
export function slimSourceMap(code: string, own: (source: string) => boolean): Promise<string>;
